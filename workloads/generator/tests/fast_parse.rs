//! `shopstream_schema::parse_record` (the borrowing fast parse the gate and the processor use)
//! agrees with `parse_session` on what the generator writes, and on damaged copies of it.

use rand::{Rng, SeedableRng};
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_schema::{SessionView, parse_record, parse_session};

/// Same acceptance, same error, same fields; returns whether the fast path took the record.
fn agrees(bytes: &[u8]) -> bool {
    match (parse_session(bytes), parse_record(bytes)) {
        (Ok(s), Ok(r)) => {
            assert_eq!(r.view(), SessionView::of(&s), "{}", String::from_utf8_lossy(bytes));
            r.is_fast()
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "{}", String::from_utf8_lossy(bytes));
            false
        }
        (a, b) => panic!(
            "fast path disagrees on {}: reference {:?}, got {:?}",
            String::from_utf8_lossy(bytes),
            a.err(),
            b.err()
        ),
    }
}

fn generated(n: usize, seed: u64) -> Vec<String> {
    let mut g = Generator::new(GeneratorConfig { seed, users: 500, ..Default::default() })
        .expect("generator");
    (0..n).map(|_| g.next_session().session.to_json()).collect()
}

#[test]
fn generated_records_take_the_fast_path_with_the_same_fields() {
    for line in generated(3_000, 11) {
        assert!(agrees(line.as_bytes()), "{line}");
    }
}

#[test]
fn truncations_and_byte_flips_agree_with_the_reference() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (mut fast, mut refused) = (0, 0);
    for line in generated(200, 3) {
        let bytes = line.as_bytes();
        for _ in 0..20 {
            let mut b = bytes.to_vec();
            match rng.random_range(0..3) {
                0 => b.truncate(rng.random_range(0..b.len())),
                1 => {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
                _ => {
                    let i = rng.random_range(0..b.len());
                    b[i] = b"0123456789 \",:[]{}\\nxe-."[rng.random_range(0..24)];
                }
            }
            if agrees(&b) {
                fast += 1;
            } else if parse_session(&b).is_err() {
                refused += 1;
            }
        }
    }
    // The damage must exercise both outcomes, or the comparison shows little.
    assert!(fast > 100 && refused > 1_000, "fast {fast}, refused {refused}");
}
