/**
 * Values in the packed snapshot form (`bunting serve --kv-format packed`,
 * `bunting publish --packed`) from the KV and directory sources.
 *
 * A packed value is `BSNP`, the format version (`u16`, little-endian), a
 * digest byte (1: 32 digest bytes follow the header, 0: none), then the
 * document's length as an unsigned LEB128 int (0: no document, else its
 * length + 1). The document — the snapshot's published JSON text, byte for
 * byte — is the value's last bytes (the format: `core/src/packed/mod.rs`). The
 * SDK takes that text and checks it exactly as a JSON value; the packed
 * tables before it are the edge's business, and only their digest is
 * checked here, to explain a document that is not UTF-8: a value cut at its
 * tail makes the header place the document inside the tables.
 *
 * ```ts
 * const text = isPacked(bytes) ? packedDocument(bytes) : new TextDecoder().decode(bytes);
 * ```
 */
import { createHash } from "node:crypto";

import { SourceError } from "./source-error.js";

/** The first bytes of every packed value: `BSNP`. */
export const PACKED_MAGIC: readonly number[] = [0x42, 0x53, 0x4e, 0x50];

/**
 * The newest packed format version this package reads: it reads versions 1
 * to this one, whose headers are alike (version 2 adds precompiled rule
 * conditions to the tables, which only the edge reads).
 */
export const PACKED_FORMAT_VERSION = 2;

/** Why a packed value was refused. */
export type PackedProblem =
  | "version" // a format version outside 1 to PACKED_FORMAT_VERSION
  | "no-document" // packed without the JSON text
  | "truncated" // the header, or the document its length announces, is cut short
  | "corrupt" // a header field no packer writes
  | "encoding" // the document is not UTF-8
  | "damaged"; // the document does not read and the tables fail their digest (cut at the tail, or damaged)

/** A packed value the SDK cannot take a snapshot's JSON text out of (a fetch error: the last good snapshot keeps serving). */
export class PackedSnapshotError extends SourceError {
  override name = "PackedSnapshotError";
  constructor(
    readonly problem: PackedProblem,
    message: string,
  ) {
    super(message);
  }
}

/** Whether `bytes` starts with `BSNP`. */
export function isPacked(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && PACKED_MAGIC.every((b, i) => bytes[i] === b);
}

/** The JSON text a packed value carries; throws `PackedSnapshotError`. */
export function packedDocument(bytes: Uint8Array): string {
  if (!isPacked(bytes)) throw new PackedSnapshotError("corrupt", "not a packed snapshot (no BSNP magic)");
  const short = () => new PackedSnapshotError("truncated", "the packed snapshot ends early, inside its header");
  if (bytes.length < 7) throw short();
  const version = bytes[4]! | (bytes[5]! << 8);
  if (version < 1 || version > PACKED_FORMAT_VERSION) {
    throw new PackedSnapshotError(
      "version",
      `packed snapshot format version ${version} is not one this package reads (1 to ${PACKED_FORMAT_VERSION}); upgrade the package`,
    );
  }
  const digest = bytes[6]!;
  if (digest > 1) throw new PackedSnapshotError("corrupt", `the packed snapshot's digest marker is ${digest}, not 0 or 1`);
  // The length, LEB128 (at most 10 bytes). Past 2^53 a Number is inexact, but any such length is past the value's end anyway.
  let at = 7;
  let n = 0;
  for (let shift = 0; ; shift += 7) {
    if (at >= bytes.length) throw short();
    if (shift > 63) throw new PackedSnapshotError("corrupt", "the packed snapshot's document length is over 64 bits");
    const b = bytes[at++]!;
    n += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
  }
  if (n === 0) {
    throw new PackedSnapshotError("no-document", "the packed snapshot carries no JSON document (the origin's publishers always pack one)");
  }
  const length = n - 1;
  const tables = at + digest * 32;
  if (length > bytes.length - tables) {
    throw new PackedSnapshotError(
      "truncated",
      `the packed snapshot ends early: its document is ${length} bytes, ${Math.max(0, bytes.length - tables)} follow its header`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(bytes.length - length));
  } catch {
    // The tables run from the digest to the document: a value cut at its
    // tail moves where they end, which the digest notices.
    if (digest === 1) {
      const sealed = bytes.subarray(at, tables);
      const actual = createHash("sha256").update(bytes.subarray(tables, bytes.length - length)).digest();
      if (!actual.equals(sealed)) {
        throw new PackedSnapshotError("damaged", "the packed snapshot does not match its digest (cut short or damaged)");
      }
    }
    throw new PackedSnapshotError("encoding", "the packed snapshot's document is not UTF-8");
  }
}

/**
 * The snapshot JSON text of a KV value, a directory file or a bootstrap
 * file: the document a packed value carries, or the value itself.
 */
export function snapshotText(value: Uint8Array): string {
  return isPacked(value) ? packedDocument(value) : new TextDecoder().decode(value);
}
