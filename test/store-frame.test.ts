import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, frame, readFrame, scanFrames, textFrame } from '../src/store/frame.js';

/** The journal's record framing: length, CRC-32, payload; a reader stops where damage begins. */
const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024;

/** A frame header claiming `length` bytes with `crc`, and no payload. */
function header(length: number, crc = 0): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt32LE(length, 0);
  h.writeUInt32LE(crc, 4);
  return h;
}

function scanAll(buf: Buffer, start = 0) {
  const seen: Array<[string, number]> = [];
  const scan = scanFrames(buf, start, (payload, offset) => void seen.push([payload.toString('utf8'), offset]));
  return { ...scan, seen };
}

describe('frame', () => {
  it('is the payload length (u32 LE), its CRC-32 (u32 LE), then the payload', () => {
    const payload = Buffer.from('hello, 世界');
    const f = frame(payload);
    expect(FRAME_HEADER_BYTES).toBe(8);
    expect(f.length).toBe(8 + payload.length);
    expect(f.readUInt32LE(0)).toBe(payload.length);
    expect(f.readUInt32LE(4)).toBe(crc32(payload));
    expect(f.subarray(8)).toEqual(payload);
  });

  it('frames text as UTF-8 bytes: textFrame(t) is frame(bytes of t), CJK and emoji included', () => {
    for (const text of ['a', '["p","jobs",{"id":"x"}]', '审批通过 ✅ 🎉', 'x'.repeat(1000)]) {
      const f = textFrame(text);
      expect(f, text).toEqual(frame(Buffer.from(text, 'utf8')));
      expect(f.readUInt32LE(0)).toBe(Buffer.byteLength(text));
      expect(f.subarray(8).toString('utf8')).toBe(text);
    }
  });
});

describe('scanFrames', () => {
  it('reads every good frame with its offset and ends past the last one, without a problem', () => {
    const buf = Buffer.concat([Buffer.from('HEAD'), textFrame('one'), textFrame('two-two'), textFrame('三')]);
    const scan = scanAll(buf, 4);
    expect(scan.seen).toEqual([
      ['one', 4],
      ['two-two', 4 + 8 + 3],
      ['三', 4 + 8 + 3 + 8 + 7],
    ]);
    expect(scan).toMatchObject({ end: buf.length });
    expect(scan.problem).toBeUndefined();
    expect('problem' in scan).toBe(false);
  });

  it('answers end = start for an empty tail, and reads nothing', () => {
    expect(scanAll(Buffer.alloc(0))).toEqual({ end: 0, seen: [] });
    expect(scanAll(Buffer.from('HEAD'), 4)).toEqual({ end: 4, seen: [] });
  });

  it('cuts a torn tail at the start of the torn record, at every byte the write could have stopped', () => {
    const good = Buffer.concat([textFrame('first'), textFrame('second')]);
    const last = textFrame('the last one');
    for (let cut = 1; cut < last.length; cut++) {
      const buf = Buffer.concat([good, last.subarray(0, cut)]);
      const scan = scanAll(buf);
      expect(scan.seen.map(([p]) => p), `cut ${cut}`).toEqual(['first', 'second']);
      expect(scan.end, `cut ${cut}`).toBe(good.length);
      expect(scan.problem, `cut ${cut}`).toBe(cut < 8 ? 'a record header is cut short' : 'the last record is cut short');
    }
  });

  it('tells a header cut short from a whole header whose payload is missing (8 bytes left is a whole header)', () => {
    expect(scanAll(header(1, 0).subarray(0, 7))).toEqual({ end: 0, problem: 'a record header is cut short', seen: [] });
    expect(scanAll(header(1, 0))).toEqual({ end: 0, problem: 'the last record is cut short', seen: [] });
    const f = textFrame('abc');
    expect(scanAll(f.subarray(0, f.length - 1))).toEqual({ end: 0, problem: 'the last record is cut short', seen: [] });
  });

  it('refuses a zero length and a length over 512 MiB as impossible, and takes 512 MiB itself as a (cut short) record', () => {
    const before = textFrame('ok');
    expect(scanAll(Buffer.concat([before, header(0), Buffer.from('xxxx')]))).toEqual({ end: before.length, problem: 'a record has an impossible length', seen: [['ok', 0]] });
    expect(scanAll(Buffer.concat([before, header(MAX_PAYLOAD_BYTES + 1)]))).toMatchObject({ end: before.length, problem: 'a record has an impossible length' });
    expect(scanAll(Buffer.concat([before, header(0xffffffff)]))).toMatchObject({ end: before.length, problem: 'a record has an impossible length' });
    expect(scanAll(Buffer.concat([before, header(MAX_PAYLOAD_BYTES)]))).toMatchObject({ end: before.length, problem: 'the last record is cut short' });
  });

  it('reads a payload longer than 512 bytes (the limit is in MiB)', () => {
    const text = 'y'.repeat(600 * 1024);
    const scan = scanAll(textFrame(text));
    expect(scan.seen).toEqual([[text, 0]]);
    expect(scan.problem).toBeUndefined();
  });

  it('stops at a record that fails its checksum: a flipped payload byte, or a flipped checksum byte', () => {
    const a = textFrame('alpha');
    const b = textFrame('bravo');
    const c = textFrame('charlie');
    for (const at of [8, 8 + 4, 4, 7]) {
      const damaged = Buffer.from(b);
      damaged[at]! ^= 0x01;
      const scan = scanAll(Buffer.concat([a, damaged, c]));
      expect(scan, `byte ${at}`).toEqual({ end: a.length, problem: 'a record fails its checksum', seen: [['alpha', 0]] });
    }
  });

  it('stops where the caller cannot use a record, at that record', () => {
    const buf = Buffer.concat([textFrame('one'), textFrame('unknown'), textFrame('three')]);
    const seen: string[] = [];
    const scan = scanFrames(buf, 0, (p) => {
      seen.push(p.toString());
      return p.toString() !== 'unknown';
    });
    expect(seen).toEqual(['one', 'unknown']);
    expect(scan).toEqual({ end: 11, problem: 'a record holds no change this version knows' });
  });

  it('goes on when the caller answers true or nothing', () => {
    const buf = Buffer.concat([textFrame('one'), textFrame('two')]);
    expect(scanFrames(buf, 0, () => true)).toEqual({ end: buf.length });
    expect(scanFrames(buf, 0, () => undefined)).toEqual({ end: buf.length });
  });
});

describe('readFrame', () => {
  it('decodes the first frame only', () => {
    expect(readFrame(Buffer.concat([textFrame('first'), textFrame('second')]))?.toString()).toBe('first');
    expect(readFrame(textFrame('only'))?.toString()).toBe('only');
  });

  it('answers undefined for a damaged or short frame', () => {
    const f = textFrame('payload');
    f[10]! ^= 0xff;
    expect(readFrame(f)).toBeUndefined();
    expect(readFrame(textFrame('payload').subarray(0, 9))).toBeUndefined();
    expect(readFrame(Buffer.alloc(0))).toBeUndefined();
  });
});
