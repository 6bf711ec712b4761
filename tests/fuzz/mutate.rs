//! From a proptest seed to one input: mostly a mutated seed file, sometimes arbitrary bytes or
//! dictionary words, so the fuzzer both gets past the first parse step and tries what no
//! writer would produce.

/// Inputs never grow past this; deep nesting and long numbers fit well inside it.
const MAX_LEN: usize = 64 << 10;

/// Numbers at the edges of the integer and float types the decoders convert into.
const HUGE_NUMBERS: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "2147483647",
    "-2147483648",
    "4294967296",
    "99999999999999999999999999999999999999999",
    "-1",
    "0",
    "-0",
    "1e309",
    "-1e309",
    "1e-400",
    "NaN",
    "Infinity",
    "0.000000000000000000001",
    "123456789012345678901234567890.123456789",
];

/// Multibyte UTF-8 (two, three and four bytes, a BOM, a combining mark) and invalid UTF-8.
const UNICODE: &[&[u8]] = &[
    "é".as_bytes(),
    "€".as_bytes(),
    "𝄞".as_bytes(),
    "\u{feff}".as_bytes(),
    "e\u{301}".as_bytes(),
    "日本語".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9d\x84",
    b"\x00",
    b"\r\n",
];

/// Openers of nesting for the formats fuzzed here (JSON, SQL, types, datetime patterns).
const OPENERS: &[&str] = &["[", "{", "(", "{\"a\":", "[[", "ARRAY<", "STRUCT<a: ", "MAP<STRING, ", "NOT ", "- ", "'[", "CAST("];

/// Integers written into binary inputs (lengths, counts, offsets in headers).
const INTERESTING_U32: &[u32] = &[0, 1, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fffe, 0x1000_0000];

/// The input for `seed`: a mutated seed file (most of the time), arbitrary bytes, or words.
pub fn input(seed: u64, seeds: &[Vec<u8>], dictionary: &[&str]) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = match rng.u32(0..20) {
        0 | 1 => {
            let len = rng.usize(0..512);
            (0..len).map(|_| rng.u8(..)).collect()
        }
        2 => {
            let mut v = Vec::new();
            for _ in 0..rng.usize(1..40) {
                v.extend_from_slice(word(&mut rng, dictionary));
                v.push(b" ,:;=()[]{}<>\n\"'"[rng.usize(0..16)]);
            }
            v
        }
        _ if seeds.is_empty() => Vec::new(),
        _ => {
            let mut v = seeds[rng.usize(0..seeds.len())].clone();
            for _ in 0..rng.usize(1..=4) {
                mutate(&mut rng, &mut v, seeds, dictionary);
            }
            v
        }
    };
    out.truncate(MAX_LEN);
    out
}

fn word<'a>(rng: &mut fastrand::Rng, dictionary: &[&'a str]) -> &'a [u8] {
    if !dictionary.is_empty() && rng.bool() {
        dictionary[rng.usize(0..dictionary.len())].as_bytes()
    } else {
        HUGE_NUMBERS[rng.usize(0..HUGE_NUMBERS.len())].as_bytes()
    }
}

fn mutate(rng: &mut fastrand::Rng, v: &mut Vec<u8>, seeds: &[Vec<u8>], dictionary: &[&str]) {
    let at = |rng: &mut fastrand::Rng, v: &Vec<u8>| rng.usize(0..=v.len());
    match rng.u32(0..13) {
        // Truncate: a write cut short.
        0 => {
            let cut = at(rng, v);
            v.truncate(cut);
        }
        // Flip bits or overwrite bytes.
        1 => {
            for _ in 0..rng.usize(1..8) {
                if v.is_empty() {
                    break;
                }
                let i = rng.usize(0..v.len());
                v[i] = if rng.bool() { v[i] ^ (1 << rng.u32(0..8)) } else { rng.u8(..) };
            }
        }
        // Delete a range.
        2 => {
            let a = at(rng, v);
            let b = (a + rng.usize(0..64)).min(v.len());
            v.drain(a..b);
        }
        // Duplicate a range in place.
        3 => {
            let a = at(rng, v);
            let b = (a + rng.usize(0..128)).min(v.len());
            let chunk = v[a..b].to_vec();
            let times = if rng.u32(0..8) == 0 { rng.usize(2..500) } else { 1 };
            let to = at(rng, v);
            v.splice(to..to, chunk.repeat(times));
        }
        // Splice with another seed: a prefix of this one, a suffix of that one.
        4 => {
            let other = &seeds[rng.usize(0..seeds.len())];
            let cut = at(rng, v);
            let from = rng.usize(0..=other.len());
            v.truncate(cut);
            v.extend_from_slice(&other[from..]);
        }
        // Insert a dictionary word.
        5 | 6 => {
            let to = at(rng, v);
            let w = word(rng, dictionary).to_vec();
            v.splice(to..to, w);
        }
        // Replace a run of digits with a huge number.
        7 | 8 => {
            let digits: Vec<usize> = (0..v.len()).filter(|i| v[*i].is_ascii_digit()).collect();
            let n = HUGE_NUMBERS[rng.usize(0..HUGE_NUMBERS.len())].as_bytes();
            if digits.is_empty() {
                let to = at(rng, v);
                v.splice(to..to, n.iter().copied());
            } else {
                let start = digits[rng.usize(0..digits.len())];
                let end = (start..v.len()).find(|i| !v[*i].is_ascii_digit()).unwrap_or(v.len());
                let start = (0..start).rev().take_while(|i| v[*i].is_ascii_digit() || v[*i] == b'-').last().unwrap_or(start);
                v.splice(start..end, n.iter().copied());
            }
        }
        // Deep nesting.
        9 => {
            let opener = OPENERS[rng.usize(0..OPENERS.len())].as_bytes();
            let depth = [33, 100, 1_000, 10_000][rng.usize(0..4)];
            let to = at(rng, v);
            v.splice(to..to, opener.repeat(depth));
        }
        // Multibyte or invalid UTF-8.
        10 => {
            for _ in 0..rng.usize(1..4) {
                let to = at(rng, v);
                v.splice(to..to, UNICODE[rng.usize(0..UNICODE.len())].iter().copied());
            }
        }
        // Overwrite four bytes with an interesting little-endian integer (binary headers).
        11 => {
            if v.len() >= 4 {
                let i = rng.usize(0..=v.len() - 4);
                v[i..i + 4].copy_from_slice(&INTERESTING_U32[rng.usize(0..INTERESTING_U32.len())].to_le_bytes());
            }
        }
        // Long flat repetition of a word (long operator chains, many fields, many lines).
        _ => {
            let w = word(rng, dictionary).to_vec();
            let sep: &[u8] = [&b","[..], b" + ", b" AND ", b"\n", b" "][rng.usize(0..5)];
            let mut chunk = Vec::new();
            for _ in 0..rng.usize(2..10_000) {
                chunk.extend_from_slice(&w);
                chunk.extend_from_slice(sep);
            }
            let to = at(rng, v);
            v.splice(to..to, chunk);
        }
    }
}
