/** Entry point of `edfs demo`. Placeholder until the demo lands. */

export async function runDemo(): Promise<void> {
  throw new Error('demo: not available yet');
}
