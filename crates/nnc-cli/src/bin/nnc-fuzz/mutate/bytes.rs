//! Format-blind damage to bytes: flipped bits, truncation, spliced and duplicated runs, as a
//! bad disk, an interrupted copy or a careless edit would leave.

/// Damages `data` once; returns what was done.
pub fn damage(rng: &mut fastrand::Rng, data: &mut Vec<u8>) -> String {
    if data.is_empty() {
        data.extend((0..rng.usize(1..16)).map(|_| rng.u8(..)));
        return "filled an empty file with random bytes".into();
    }
    let at = rng.usize(..data.len());
    match rng.u8(..6) {
        0 => {
            let bit = rng.u8(..8);
            data[at] ^= 1 << bit;
            format!("flipped bit {bit} of byte {at}")
        }
        1 => {
            data.truncate(at);
            format!("truncated to {at} bytes")
        }
        2 => {
            let len = rng.usize(1..=16).min(data.len() - at);
            for b in &mut data[at..at + len] {
                *b = rng.u8(..);
            }
            format!("overwrote {len} bytes at {at} with random ones")
        }
        3 => {
            let end = (at + rng.usize(1..64)).min(data.len());
            let run = data[at..end].to_vec();
            data.splice(at..at, run);
            format!("duplicated bytes {at}..{end}")
        }
        4 => {
            let end = (at + rng.usize(1..64)).min(data.len());
            data.drain(at..end);
            format!("deleted bytes {at}..{end}")
        }
        _ => {
            let value: [u8; 4] = [0xff, 0xff, 0xff, 0x7f];
            let end = (at + 4).min(data.len());
            data[at..end].copy_from_slice(&value[..end - at]);
            format!("wrote 0x7fffffff at byte {at}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_changes_the_bytes() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let mut data: Vec<u8> = (0..100).collect();
            let what = damage(&mut rng, &mut data);
            assert!(!what.is_empty());
            assert!(data != (0..100).collect::<Vec<u8>>() || what.contains("0x7fffffff"), "{what}");
        }
    }
}
