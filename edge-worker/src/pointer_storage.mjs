// The pointer Durable Object's storage and event-stream work
// (edge-worker/src/pointer_object.rs imports these functions through
// wasm-bindgen). Written in JavaScript because each replaced several imports
// or an `await` in the Rust module (docs/performance.md, "Edge bundle under
// the goal"); tests/edge/pointer-storage.test.mjs runs them against an
// in-memory storage.
//
// Storage layout: a JSON text's chunks are strings under
// `snapshot:<version>:<i>`, a packed value's are bytes under
// `packed:<version>:<i>`, then `latest` is `[version, chunks]`.
const encoder = new TextEncoder();
const digits = (x) => typeof x === 'bigint'
    ? (x >= 0n ? String(x) : undefined)
    : (Number.isSafeInteger(x) && x >= 0 ? String(x) : undefined);
export async function readChunks(storage, version, n) {
    const parts = [];
    let family = 'snapshot', length = 0;
    for (let i = 0; i < n; ) {
        const key = `${family}:${version}:${i}`;
        const v = await storage.get(key);
        let bytes;
        if (typeof v === 'string') bytes = encoder.encode(v);
        else if (v instanceof Uint8Array || v instanceof ArrayBuffer) bytes = new Uint8Array(v);
        else if (v !== undefined) throw new Error(`the stored chunk ${key} is neither a string nor bytes`);
        if (i === 0 && bytes === undefined && family === 'snapshot') {
            family = 'packed';
            continue;
        }
        if (bytes !== undefined) {
            parts.push(bytes);
            length += bytes.length;
        }
        i++;
    }
    const value = new Uint8Array(length);
    length = 0;
    for (const part of parts) {
        value.set(part, length);
        length += part.length;
    }
    return value;
}
export async function storeValue(storage, version, number, value, text, max, previous, n) {
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    let i = 0;
    for (let at = 0; at < value.length || i === 0; i++) {
        let end = Math.min(value.length, at + max);
        if (text) while ((value[end] & 0xc0) === 0x80) end--;
        const piece = text ? decoder.decode(value.subarray(at, end)) : value.slice(at, end);
        await storage.put(`${text ? 'snapshot' : 'packed'}:${version}:${i}`, piece);
        at = end;
    }
    if (Number.isNaN(number)) throw new Error(`${version} can't be represented as a JavaScript number`);
    await storage.put('latest', [number, i]);
    await deleteChunks(storage, previous, n);
}
async function deleteChunks(storage, version, n) {
    const keys = [];
    for (let i = 0; i < n; i++) keys.push(`snapshot:${version}:${i}`, `packed:${version}:${i}`);
    for (let i = 0; i < keys.length; i += 128) await storage.delete(keys.slice(i, i + 128));
}
export async function readLatest(storage) {
    const v = await storage.get('latest');
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) return null;
    const version = digits(v[0]), chunks = digits(v[1]);
    return version === undefined || chunks === undefined ? null : version + ' ' + chunks;
}
export function eventStream() {
    const s = {};
    s.stream = new ReadableStream({ start(c) { s.controller = c; } });
    return s;
}
export function send(s, text) { s.controller.enqueue(encoder.encode(text)); }
export function broadcast(streams, text) {
    let kept = 0;
    for (const s of streams) {
        try {
            send(s, text);
            streams[kept++] = s;
        } catch {}
    }
    streams.length = kept;
}
