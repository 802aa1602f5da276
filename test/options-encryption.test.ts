import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decryptOptions, encryptOptions } from '../src/flows/options-encryption.js';

/**
 * Lark's external-options encryption, checked against the documented scheme written out here
 * independently: AES-256-CBC, key = SHA-256(Key), a random IV prepended, base64.
 * https://open.feishu.cn/document/server-docs/approval-v4/approval/associate-external-options
 */
const KEY = 'widget-key-审批';
const keyOf = (k: string) => createHash('sha256').update(Buffer.from(k, 'utf8')).digest();

function larkDecrypt(text: string, key: string): string {
  const buf = Buffer.from(text, 'base64');
  const d = createDecipheriv('aes-256-cbc', keyOf(key), buf.subarray(0, 16));
  return Buffer.concat([d.update(buf.subarray(16)), d.final()]).toString('utf8');
}

/** Lark's documented Java encrypter: a zero IV over 16 zero bytes + the text, not prepended. */
function larkEncryptLikeJava(plain: string, key: string): string {
  const c = createCipheriv('aes-256-cbc', keyOf(key), Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.concat([Buffer.alloc(16), Buffer.from(plain, 'utf8')])), c.final()]).toString('base64');
}

/** What a decryption gives, or "refused" (a wrong key fails the padding check, or gives noise). */
function attempt(f: () => string): string {
  try {
    return f();
  } catch {
    return 'refused';
  }
}

describe('encryptOptions', () => {
  it('is what Lark decrypts: the IV first, then the UTF-8 text, with SHA-256 of the Key', () => {
    const plain = JSON.stringify({ options: [{ id: 'admin', value: '@i18n@1' }], texts: { '@i18n@1': '管理员' } });
    const sealed = encryptOptions(plain, KEY);
    expect(larkDecrypt(sealed, KEY)).toBe(plain);
    expect(attempt(() => larkDecrypt(sealed, 'another-key'))).not.toBe(plain);
  });

  it('uses a fresh IV each time', () => {
    const a = Buffer.from(encryptOptions('same text', KEY), 'base64');
    const b = Buffer.from(encryptOptions('same text', KEY), 'base64');
    expect(a.subarray(0, 16).equals(b.subarray(0, 16))).toBe(false);
    expect(a.length).toBe(32);
  });
});

describe('decryptOptions', () => {
  it('opens what Lark’s documented encrypters produce, and its own', () => {
    expect(decryptOptions(larkEncryptLikeJava('{"token":"t-1"}', KEY), KEY)).toBe('{"token":"t-1"}');
    expect(decryptOptions(encryptOptions('选项', KEY), KEY)).toBe('选项');
    // The smallest payload: an IV and one block of padding.
    expect(Buffer.from(encryptOptions('', KEY), 'base64')).toHaveLength(32);
    expect(decryptOptions(encryptOptions('', KEY), KEY)).toBe('');
  });

  it('refuses a payload shorter than an IV and a block, or not whole blocks, before trying to decrypt', () => {
    const sealed = Buffer.from(encryptOptions('0123456789abcdef-0123456789', KEY), 'base64'); // 16 + 32 bytes
    for (const length of [0, 3, 16, 31, 33, 40, 47]) {
      const cut = Buffer.alloc(length);
      sealed.copy(cut, 0, 0, Math.min(length, sealed.length));
      expect(() => decryptOptions(cut.toString('base64'), KEY), String(length)).toThrow('not an encrypted options payload');
    }
    expect(decryptOptions(sealed.toString('base64'), KEY)).toBe('0123456789abcdef-0123456789');
  });

  it('does not open with another Key', () => {
    expect(attempt(() => decryptOptions(encryptOptions('{"token":"t-1"}', KEY), 'widget-key'))).not.toBe('{"token":"t-1"}');
    // Deterministic (zero IV): the padding does not check out, so it throws.
    expect(() => decryptOptions(larkEncryptLikeJava('{"token":"t-1"}', KEY), 'widget-key')).toThrow();
  });
});
