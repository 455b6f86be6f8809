/** The error a snapshot source throws (its own module so that `packed.ts` and `sources.ts` share it without importing each other). */

/** A source's failure, with the HTTP status when there was one. */
export class SourceError extends Error {
  override name = "SourceError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}
