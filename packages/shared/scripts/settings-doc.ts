// Renders docs/configuration.md from the settings table; `pnpm --filter @lxcq/shared settings:doc` rewrites it.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  DEV_PREFIXES,
  SETTINGS,
  SETTING_GROUPS,
  type SettingGroup,
  type SettingSpec,
} from '../src/settings.ts';

function defaultCell(spec: SettingSpec): string {
  if (spec.defaultText !== undefined) return spec.defaultText;
  const d = spec.default;
  if (typeof d === 'boolean') return d ? '`1`' : '`0`';
  if (typeof d === 'number' || typeof d === 'string') return `\`${d}\``;
  throw new Error('a setting whose default is not a number, string or boolean needs defaultText');
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderSettingsDoc(): string {
  const sections: string[] = [];
  for (const [group, title] of Object.entries(SETTING_GROUPS) as [SettingGroup, string][]) {
    const rows = Object.entries(SETTINGS as Record<string, SettingSpec>)
      .filter(([, spec]) => spec.group === group)
      .map(
        ([name, spec]) =>
          `| \`${name}\` | ${cell(defaultCell(spec))} | ${spec.usedBy.join(', ')} | ${cell(spec.meaning)}${spec.secret ? ' *Secret: never shown in messages.*' : ''} |`,
      );
    sections.push(
      `### ${title}`,
      '',
      '| setting | default | used by | meaning |',
      '|---|---|---|---|',
      ...rows,
      '',
    );
  }
  return [
    '# lxcq configuration',
    '',
    'Every setting any part of lxcq reads. Generated from `packages/shared/src/settings.ts`',
    '(`pnpm --filter @lxcq/shared settings:doc`); a test keeps the two equal.',
    '',
    '## Where settings come from',
    '',
    '- **The environment**: `LXCQ_PORT=8080 node --import tsx services/api/src/server.ts`. An empty value',
    '  counts as unset: the default applies.',
    '- **A config file** named by `LXCQ_CONFIG_FILE`. The systemd units (`deploy/systemd/`) set it to',
    '  `/etc/lxcq/lxcq.conf`, which the install script writes (see [deployment](deployment.md)). A',
    '  name set in the environment wins over the file, so `systemctl edit lxcq-worker` with',
    '  `Environment=LXCQ_THREADS=8` overrides the file for that one service.',
    '- The API reads the API and general settings, the worker the worker and general ones; both may',
    '  share one file, and each ignores what belongs to the other.',
    '',
    'A setting that cannot work stops the API or the worker at start with exit status 2 and one',
    'log line naming the setting, its value (never for secrets), what fits, and the file and line',
    'when it comes from the file. The systemd units do not restart a service that exited with 2.',
    '',
    'Every `LXCQ_*` name in the file or in the environment of the API, the worker or `run.sh` must be',
    'one of the settings below: a misspelt name is refused with the closest known one (`unknown setting',
    'LXCQ_THREAD in the environment; the closest known setting is LXCQ_THREADS`), rather than being',
    `silently ignored. Names starting with ${DEV_PREFIXES.map((p) => `\`${p}\``).join(' or ')} belong to the benchmarks and are let through.`,
    '',
    '## The file',
    '',
    '```sh',
    '# /etc/lxcq/lxcq.conf: root:lxcq, mode 0640 (it holds the token)',
    'LXCQ_REDIS_URL=/run/lxcq-redis/redis.sock',
    'LXCQ_TOKEN=3q2-7QvqE1oEY0-example-only-Zk',
    'LXCQ_HOST_BIND=0.0.0.0',
    'LXCQ_CONFIG_POLICY=\'{"allow":["lxc.hook.*"]}\'',
    '```',
    '',
    "One `KEY=VALUE` per line, in a subset of the env-file syntax that systemd's `EnvironmentFile=`,",
    "Docker Compose's `env_file:` and a shell's `set -a; . lxcq.conf` read the same way:",
    '',
    '- Blank lines and lines starting with `#` are ignored. No spaces around `=`.',
    "- A value is bare (`LXCQ_PORT=7070`), in single quotes (`'...'`, taken as written), or in double",
    '  quotes without `\\`, `$` or `` ` `` in it. A bare value cannot hold spaces, quotes, `\\`, `$` or',
    '  `` ` ``: those read differently in each of the three, so they go in single quotes. A value is',
    '  one line.',
    '- Only `LXCQ_*` names, each at most once. Other variables (`NODE_OPTIONS`, ...) go in the',
    "  service's own environment.",
    '- Anything else (`export KEY=...`, a line without `=`, an unclosed quote, a `;` comment) is',
    '  refused with the line number and what to write instead.',
    '',
    'When a root process (the worker, `run.sh`) reads the file, the file must be owned by root and',
    'writable by nobody else: whoever can change `LXCQ_CONFIG_POLICY` can have hooks run as root.',
    'A file holding a secret (`LXCQ_TOKEN`, `LXCQ_REDIS_URL`) must not be readable by every user.',
    '',
    '## Settings',
    '',
    ...sections,
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL('../../../docs/configuration.md', import.meta.url), renderSettingsDoc());
}
