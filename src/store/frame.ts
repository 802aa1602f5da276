import { crc32 } from 'node:zlib';

/**
 * A frame: payload length (u32 LE), CRC-32 of the payload (u32 LE), then the payload. A reader
 * stops at the first frame that is short, empty or fails its checksum: that is where a torn
 * append (power cut mid-write) or damage begins.
 */
export const FRAME_HEADER_BYTES = 8;
const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024;

export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload), 4);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export function textFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  out.write(text, FRAME_HEADER_BYTES, 'utf8');
  out.writeUInt32LE(length, 0);
  out.writeUInt32LE(crc32(out.subarray(FRAME_HEADER_BYTES)), 4);
  return out;
}

export interface FrameScan {
  /** Offset just past the last good frame. */
  end: number;
  /** Why reading stopped before the end of the buffer, if it did. */
  problem?: string;
}

/**
 * Calls onFrame for each good frame from `start`; stops at the first bad one, or where onFrame
 * returns false (a frame intact on disk whose content the caller cannot use).
 */
export function scanFrames(buf: Buffer, start: number, onFrame: (payload: Buffer, offset: number) => boolean | void): FrameScan {
  let at = start;
  while (at < buf.length) {
    if (buf.length - at < FRAME_HEADER_BYTES) return { end: at, problem: 'a record header is cut short' };
    const length = buf.readUInt32LE(at);
    if (length === 0 || length > MAX_PAYLOAD_BYTES) return { end: at, problem: 'a record has an impossible length' };
    if (at + FRAME_HEADER_BYTES + length > buf.length) return { end: at, problem: 'the last record is cut short' };
    const payload = buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
    if (crc32(payload) !== buf.readUInt32LE(at + 4)) return { end: at, problem: 'a record fails its checksum' };
    if (onFrame(payload, at) === false) return { end: at, problem: 'a record holds no change this version knows' };
    at += FRAME_HEADER_BYTES + length;
  }
  return { end: at };
}

/** Decodes one frame read back from a file (for reads of a single archived record). */
export function readFrame(buf: Buffer): Buffer | undefined {
  let out: Buffer | undefined;
  scanFrames(buf, 0, (payload) => {
    out = payload;
    return false;
  });
  return out;
}
