/**
 * The "cached image" the main lifecycle mode creates from: a busybox rootfs and a metadata
 * tarball holding a `config`, in the layout lxc-local (template `local`) unpacks, built once per
 * run, for images.test.ts and the pipeline benchmark alike.
 *
 * Both are xz: lxc-local extracts with `tar Jxf` / `tar -xpJf`, which forces xz, so an
 * uncompressed or gzip tarball is refused. The rootfs is about 2 MB (the static busybox binary),
 * so xz's decompression is a few tens of ms of the create.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeLxcpath } from './harness.ts';

export interface LocalImage {
  /** The images directory (the worker's LXCQ_IMAGES_DIR). */
  dir: string;
  /** File names inside `dir`, as POST /v1/containers {template: 'local', local} takes them. */
  rootfs: string;
  metadata: string;
  /** Full paths, for lxc-local's --fstree / --metadata when called directly. */
  rootfsPath: string;
  metadataPath: string;
  rootfsBytes: number;
}

/** The distribution config the image's metadata carries. */
const IMAGE_CONFIG = [
  'lxc.signal.halt = SIGUSR1',
  'lxc.signal.reboot = SIGTERM',
  'lxc.autodev = 1',
  'lxc.tty.max = 1',
  'lxc.mount.auto = cgroup:mixed proc:mixed sys:ro',
  '',
].join('\n');

/**
 * Builds busybox-rootfs.tar.xz and busybox-meta.tar.xz in a new temporary images directory;
 * `extraConfig` lines are appended to the config the metadata carries.
 */
export function buildLocalImage(extraConfig = ''): LocalImage {
  const dir = mkdtempSync(join(tmpdir(), 'lxcq-images-'));
  const src = mkdtempSync(join(tmpdir(), 'lxcq-imgsrc-'));
  const meta = mkdtempSync(join(tmpdir(), 'lxcq-meta-'));
  const rootfs = 'busybox-rootfs.tar.xz';
  const metadata = 'busybox-meta.tar.xz';
  try {
    execFileSync('lxc-create', ['-P', src, '-n', 'src', '-t', 'busybox'], { stdio: 'ignore' });
    execFileSync('tar', [
      '-C',
      join(src, 'src', 'rootfs'),
      '--numeric-owner',
      '-cJf',
      join(dir, rootfs),
      '.',
    ]);
    writeFileSync(join(meta, 'config'), IMAGE_CONFIG + extraConfig);
    execFileSync('tar', ['-C', meta, '-cJf', join(dir, metadata), 'config']);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    removeLxcpath(src);
    rmSync(meta, { recursive: true, force: true });
  }
  return {
    dir,
    rootfs,
    metadata,
    rootfsPath: join(dir, rootfs),
    metadataPath: join(dir, metadata),
    rootfsBytes: statSync(join(dir, rootfs)).size,
  };
}

export function removeLocalImage(img: LocalImage): void {
  rmSync(img.dir, { recursive: true, force: true });
}
