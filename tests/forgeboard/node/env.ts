// The settings tests/forgeboard/*.py hand the Node side, each FORGEBOARD_TEST_<name>.

export function env(name: string): string {
  const value = process.env[`FORGEBOARD_TEST_${name}`];
  if (!value) throw new Error(`FORGEBOARD_TEST_${name} is not set`);
  return value;
}
