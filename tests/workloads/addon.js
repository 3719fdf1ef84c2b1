// Loads the leaking addon given as argv[2], leaks 100 blocks through it, and
// keeps 100 Buffers of 64 KiB alive in JavaScript until it exits.
const addon = require(process.argv[2]);
addon.leak(100);
const buffers = [];
for (let i = 0; i < 100; i++) {
  buffers.push(Buffer.alloc(64 * 1024, i));
}
globalThis.kept = buffers;
