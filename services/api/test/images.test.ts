// Creating containers from a local LXC image (rootfs + metadata tarballs in the worker's images
// directory), the "cached image" path, with real tarballs made from a busybox container.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG } from './harness.ts';
import { buildLocalImage, removeLocalImage, type LocalImage } from './local-image.ts';

let image: LocalImage;
let images: string;
let s: Stack;

beforeAll(async () => {
  image = buildLocalImage();
  images = image.dir;
  s = await Stack.start({ workerEnv: { LXCQ_IMAGES_DIR: images } });
});
afterAll(async () => {
  await s?.close();
  if (image) removeLocalImage(image);
});

describe('create from a local image', () => {
  it('unpacks the image, applies the config, starts it, and it runs', async () => {
    const j = await s.run('POST', '/v1/containers', {
      name: 'img1',
      template: 'local',
      local: { rootfs: 'busybox-rootfs.tar.xz', metadata: 'busybox-meta.tar.xz' },
      config: TEST_CONFIG,
      start: true,
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(j.result).toMatchObject({ name: 'img1', state: 'RUNNING' });
    const e = await s.run('POST', '/v1/containers/img1/exec', { argv: ['hostname'] });
    expect(e.result).toMatchObject({ exitCode: 0, stdout: 'img1\n' });
    const d = await s.run('DELETE', '/v1/containers/img1?force=true');
    expect(d.state).toBe('completed');
  });

  it('unpacks an image once: later containers are copies of the cached base, each its own', async () => {
    const img = { rootfs: 'busybox-rootfs.tar.xz', metadata: 'busybox-meta.tar.xz' };
    for (const name of ['copy1', 'copy2']) {
      const j = await s.run('POST', '/v1/containers', {
        name,
        template: 'local',
        local: img,
        config: TEST_CONFIG,
        start: true,
      });
      expect(j.state, JSON.stringify(j.error)).toBe('completed');
    }
    const bases = readdirSync(join(s.lxcpath, '.lxcq', 'images')).filter((d) => d.startsWith('img-'));
    expect(bases).toHaveLength(1);
    await s.run('POST', '/v1/containers/copy1/exec', { argv: ['sh', '-c', 'echo mine > /only-here'] });
    const other = await s.run('POST', '/v1/containers/copy2/exec', { argv: ['test', '-e', '/only-here'] });
    expect(other.result).toMatchObject({ exitCode: 1 });
    expect(existsSync(join(s.lxcpath, '.lxcq', 'images', bases[0] as string, 'rootfs', 'only-here'))).toBe(
      false,
    );
    for (const name of ['copy1', 'copy2'])
      expect((await s.run('DELETE', `/v1/containers/${name}?force=true`)).state).toBe('completed');
  });

  it('a broken image fails with LXCQ_TEMPLATE_FAILED and leaves nothing behind', async () => {
    writeFileSync(join(images, 'broken.tar.xz'), 'not a tarball');
    const j = await s.run('POST', '/v1/containers', {
      name: 'img2',
      template: 'local',
      local: { rootfs: 'broken.tar.xz', metadata: 'busybox-meta.tar.xz' },
      config: TEST_CONFIG,
    });
    expect(j.state).toBe('failed');
    expect(j.error?.code).toBe('LXCQ_TEMPLATE_FAILED');
    expect(s.lxcLs()).not.toContain('img2');
    expect((await s.http('GET', '/v1/containers/img2')).status).toBe(404);
  });

  it('image names cannot leave the images directory', async () => {
    const r = await s.http<{ error: { code: string } }>('POST', '/v1/containers', {
      name: 'img3',
      template: 'local',
      local: { rootfs: '../../etc/shadow', metadata: 'busybox-meta.tar.xz' },
    });
    expect(r.status).toBe(400);
  });
});
