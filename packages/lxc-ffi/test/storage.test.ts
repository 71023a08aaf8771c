// Snapshots, clones (copy and overlayfs snapshot), rename, destroy with snapshots.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Container, listContainers, openContainers } from '../src/index.ts';
import { cleanupLxcpath, createBusybox, makeLxcpath, processesUnder } from './helpers.ts';

const lxcpath = makeLxcpath('store');

afterAll(() => {
  const { leftovers } = cleanupLxcpath(lxcpath);
  expect(leftovers).toEqual([]);
  expect(processesUnder(lxcpath)).toEqual([]);
});

describe('storage (busybox, real liblxc)', () => {
  it('snapshot / snapshot_list / snapshot_restore / snapshot_destroy / snapshot_destroy_all', () => {
    using c = createBusybox(lxcpath, 'snap1');
    const comment = join(lxcpath, 'comment.txt');
    writeFileSync(comment, 'first snapshot');
    expect(c.snapshot(comment)).toBe('snap0');
    expect(c.snapshot()).toBe('snap1');
    const list = c.snapshots();
    expect(list.map((s) => s.name)).toEqual(['snap0', 'snap1']);
    expect(list[0]?.comment).toBe('first snapshot');
    expect(list[0]?.timestamp).toMatch(/^\d{4}:\d{2}:\d{2}/);
    c.restoreSnapshot('snap0', 'snap1-restored');
    using restored = Container.open('snap1-restored', lxcpath);
    expect(restored.defined).toBe(true);
    restored.destroy();
    c.destroySnapshot('snap1');
    expect(c.snapshots().map((s) => s.name)).toEqual(['snap0']);
    c.snapshot();
    c.destroyAllSnapshots();
    expect(c.snapshots()).toEqual([]);
    c.snapshot();
    c.destroy({ withSnapshots: true });
    expect(c.defined).toBe(false);
  });

  it('destroy withSnapshots also destroys a container that has no snapshot', () => {
    // liblxc's own destroy_with_snapshots fails with ENOENT here (no snaps directory).
    using c = createBusybox(lxcpath, 'nosnaps');
    expect(c.snapshots()).toEqual([]);
    c.destroy({ withSnapshots: true });
    expect(c.defined).toBe(false);
    expect(listContainers(lxcpath, 'all')).not.toContain('nosnaps');
  });

  it('clone (copy), clone (overlayfs snapshot), rename, list_*_containers', () => {
    using orig = createBusybox(lxcpath, 'orig');
    using copy = orig.clone('copy1');
    expect(copy.defined).toBe(true);
    expect(copy.getConfigItem('lxc.rootfs.path')).toContain('/copy1/rootfs');
    using ov = orig.clone('over1', { snapshot: true, bdevtype: 'overlayfs' });
    expect(ov.getConfigItem('lxc.rootfs.path')).toMatch(/^overlay(fs)?:/);
    ov.start();
    expect(ov.exec({ argv: ['sh', '-c', 'echo ok > /root/x; cat /root/x'] }).stdout).toBe('ok\n');
    expect(listContainers(lxcpath, 'active')).toEqual(['over1']);
    expect(listContainers(lxcpath, 'all')).toEqual(['copy1', 'orig', 'over1']);
    const opened = openContainers(lxcpath, 'defined');
    expect(opened.map((o) => o.name)).toEqual(['copy1', 'orig', 'over1']);
    for (const o of opened) o[Symbol.dispose]();
    ov.stop();
    ov.destroy();
    copy.rename('copy2');
    expect(copy.name).toBe('copy2');
    expect(listContainers(lxcpath, 'defined')).toEqual(['copy2', 'orig']);
    copy.destroy();
    orig.destroy();
  });
});
