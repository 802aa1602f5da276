import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * Lark's encryption for approval external options when the admin sets a Key on the widget:
 * AES-256-CBC with key = SHA-256(Key), PKCS#7 padding, a random 16-byte IV prepended to the
 * ciphertext, all base64 — the answer's `data.result` is that text instead of an object.
 * https://open.feishu.cn/document/server-docs/approval-v4/approval/associate-external-options ("加密解密方式")
 */
export function encryptOptions(plain: string, key: string): string {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', keyOf(key), iv);
  return Buffer.concat([iv, cipher.update(plain, 'utf8'), cipher.final()]).toString('base64');
}

/** The reverse, as Lark's documented decrypter does it: the first 16 bytes are the IV. */
export function decryptOptions(encrypted: string, key: string): string {
  const buf = Buffer.from(encrypted, 'base64');
  if (buf.length < 32 || buf.length % 16 !== 0) throw new Error('not an encrypted options payload');
  const decipher = createDecipheriv('aes-256-cbc', keyOf(key), buf.subarray(0, 16));
  return Buffer.concat([decipher.update(buf.subarray(16)), decipher.final()]).toString('utf8');
}

function keyOf(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}
