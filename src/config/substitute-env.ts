/**
 * `${NAME}` references, as the config file and `trailwarden sinks create
 * --file` write them. A leaf: it imports nothing, so the CLI can resolve a
 * sink file without loading the config schema (and with it the delivery
 * layer).
 */

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Replaces `${NAME}` and `${NAME:-default}` in one string (`$${` is a literal
 * `${`). As in the shell, `:-` also applies when the variable is set but empty.
 * Returns the problems instead of throwing so a file's are all reported at once.
 */
export function substituteEnv(value: string, env: NodeJS.ProcessEnv): { value: string; problems: string[] } {
  const problems: string[] = [];
  const out = value.replace(
    /\$(\$?)\{([^}]*)(\}?)/g,
    (whole, escaped: string, body: string, close: string) => {
      if (escaped) return whole.slice(1);
      if (!close) {
        problems.push(`unclosed "\${" (write "$\${" for a literal "\${")`);
        return whole;
      }
      const sep = body.indexOf(':-');
      const name = sep === -1 ? body : body.slice(0, sep);
      if (!VAR_NAME.test(name)) {
        problems.push(`invalid variable reference "\${${body}}"`);
        return whole;
      }
      const set = env[name];
      if (sep !== -1) return set === undefined || set === '' ? body.slice(sep + 2) : set;
      if (set === undefined) {
        problems.push(`environment variable ${name} is not set (give a default with \${${name}:-value})`);
        return whole;
      }
      return set;
    },
  );
  return { value: out, problems };
}
