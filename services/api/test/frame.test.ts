import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { textFrame } from '../src/events.ts';

/** ws's frame parser (a Writable emitting 'message'); @types/ws does not declare it. */
type ReceiverCtor = new (opts: { isServer: boolean }) => Writable;
const { Receiver } = createRequire(import.meta.url)('ws') as { Receiver: ReceiverCtor };

/** Decodes frames with ws's own parser, the one every Node client uses. */
function decode(frame: Buffer): string[] {
  const got: string[] = [];
  const r = new Receiver({ isServer: false });
  r.on('message', (data: Buffer, isBinary: boolean) => {
    expect(isBinary).toBe(false);
    got.push(data.toString('utf8'));
  });
  r.write(frame);
  return got;
}

describe('textFrame', () => {
  // 7-bit, 16-bit and 64-bit payload lengths, at and around each boundary.
  it.each([0, 1, 125, 126, 127, 65535, 65536, 200_000])('frames a %i-byte payload as ws decodes it', (n) => {
    const text = 'a'.repeat(n);
    expect(textFrame(text).length - n).toBe(n < 126 ? 2 : n < 65536 ? 4 : 10);
    expect(decode(textFrame(text))).toEqual([text]);
  });

  it('counts the length in UTF-8 bytes, not characters', () => {
    const text = JSON.stringify({ s: 'é€😀'.repeat(25) }); // under 126 characters, over 126 bytes
    expect(text.length).toBeLessThan(126);
    expect(decode(textFrame(text))).toEqual([text]);
  });

  it('joins frames so one write carries several messages', () => {
    const msgs = ['{"a":1}', 'x'.repeat(300), '{"b":"ü"}'];
    expect(decode(Buffer.concat(msgs.map(textFrame)))).toEqual(msgs);
  });
});
