import type { Command } from 'commander';

interface Spec {
  name: string;
  description: string;
  options: string[];
  /** What the first argument names: a container, a host, or something else. */
  first: 'container' | 'host' | 'shell' | 'other' | 'none';
}

function specs(program: Command): { commands: Spec[]; global: string[] } {
  const longs = (c: Command) => c.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
  const commands = program.commands.flatMap((c) => {
    const arg = c.registeredArguments[0]?.name();
    const first: Spec['first'] =
      arg === undefined
        ? 'none'
        : arg === 'name'
          ? 'container'
          : arg === 'host'
            ? 'host'
            : arg === 'shell'
              ? 'shell'
              : 'other';
    const spec = { description: c.description().replace(/'/g, ''), options: [...longs(c), '--help'], first };
    return [c.name(), ...c.aliases()].map((name) => ({ name, ...spec }));
  });
  return { commands, global: [...longs(program), '--help'] };
}

/** A completion script for bash or zsh: commands, their options, container and host names. */
export function completionScript(shell: 'bash' | 'zsh', program: Command): string {
  const { commands, global } = specs(program);
  const of = (kind: Spec['first']) =>
    commands
      .filter((c) => c.first === kind)
      .map((c) => c.name)
      .join('|');
  if (shell === 'bash') {
    const cases = commands.map((c) => `    ${c.name}) opts="${c.options.join(' ')}" ;;`).join('\n');
    return `# lxcq bash completion: eval "$(lxcq completion bash)" (e.g. in ~/.bashrc)
_lxcq() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmd="" i opts=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      --url|--token) ((i++)) ;;
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [[ -z "$cmd" ]]; then
    COMPREPLY=( $(compgen -W "${commands.map((c) => c.name).join(' ')} ${global.join(' ')}" -- "$cur") )
    return
  fi
  case "$cmd" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts ${global.join(' ')}" -- "$cur") )
    return
  fi
  case "$cmd" in
    ${of('container')}) COMPREPLY=( $(compgen -W "$(lxcq list -q 2>/dev/null)" -- "$cur") ) ;;
    ${of('host')}) COMPREPLY=( $(compgen -W "$(lxcq hosts -q 2>/dev/null)" -- "$cur") ) ;;
    ${of('shell')}) COMPREPLY=( $(compgen -W "bash zsh" -- "$cur") ) ;;
  esac
}
complete -F _lxcq lxcq
`;
  }
  const described = commands.map((c) => `    '${c.name}:${c.description.replace(/:/g, '\\:')}'`).join('\n');
  const cases = commands.map((c) => `    ${c.name}) opts=(${c.options.join(' ')}) ;;`).join('\n');
  return `#compdef lxcq
# lxcq zsh completion: eval "$(lxcq completion zsh)" (after compinit), or save as _lxcq in $fpath
_lxcq() {
  local -a cmds opts
  cmds=(
${described}
  )
  local global=(${global.join(' ')})
  if (( CURRENT == 2 )); then
    if [[ "$PREFIX" == -* ]]; then compadd -- $global; else _describe 'command' cmds; fi
    return
  fi
  local cmd="\${words[2]}"
  case "$cmd" in
${cases}
  esac
  if [[ "$PREFIX" == -* ]]; then
    compadd -- $opts $global
    return
  fi
  case "$cmd" in
    ${of('container')}) compadd -- \${(f)"$(lxcq list -q 2>/dev/null)"} ;;
    ${of('host')}) compadd -- \${(f)"$(lxcq hosts -q 2>/dev/null)"} ;;
    ${of('shell')}) compadd -- bash zsh ;;
  esac
}
if [[ "$funcstack[1]" == "_lxcq" ]]; then _lxcq "$@"; else compdef _lxcq lxcq; fi
`;
}
