//! The [`Dataset`] type and the user-level train/test split.

use chrono::NaiveDateTime;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};
use shopstream_schema::Session;

use crate::{Encoder, FeaturesError, label};

/// Rows, labels and identities of a set of sessions, all in the same order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Feature matrix, one row per session (columns per [`Dataset::names`]).
    pub x: Array2<f64>,
    /// Labels, `1.0` for a purchase, else `0.0`.
    pub y: Array1<f64>,
    /// `userId` of each row.
    pub user_ids: Vec<String>,
    /// `sessionId` of each row.
    pub session_ids: Vec<String>,
    /// `sessionTimestamp` of each row.
    pub timestamps: Vec<NaiveDateTime>,
    /// Column names.
    pub names: Vec<String>,
}

/// A stable position in `[0, 1)` for a user id under a seed: FNV-1a 64 over the seed and the
/// id's bytes, finished with the SplitMix64 mixer. Stable across platforms, Rust versions and
/// runs (unlike `std`'s hasher), so a split can be reproduced from `(seed, fraction)` alone.
pub fn user_bucket(user_id: &str, seed: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(user_id.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    // Top 53 bits as a fraction in [0, 1).
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn check_fraction(test_fraction: f64) -> Result<(), FeaturesError> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(FeaturesError::InvalidArgument(format!(
            "test fraction must be in (0, 1), got {test_fraction}"
        )));
    }
    Ok(())
}

/// Whether a user falls on the test side of a split with this seed and fraction.
pub fn is_test_user(user_id: &str, test_fraction: f64, seed: u64) -> bool {
    user_bucket(user_id, seed) < test_fraction
}

/// Splits sessions into `(train, test)` by user, before any fitting: every session of a user
/// goes to the same side, and about `test_fraction` of the users go to test.
pub fn split_sessions_by_user(
    sessions: &[Session],
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<Session>, Vec<Session>), FeaturesError> {
    check_fraction(test_fraction)?;
    let (test, train): (Vec<Session>, Vec<Session>) =
        sessions.iter().cloned().partition(|s| is_test_user(&s.user_id, test_fraction, seed));
    Ok((train, test))
}

impl Dataset {
    /// Encodes sessions with a fitted encoder.
    pub fn from_sessions(encoder: &Encoder, sessions: &[Session]) -> Dataset {
        Dataset {
            x: encoder.transform(sessions),
            y: sessions.iter().map(label).collect(),
            user_ids: sessions.iter().map(|s| s.user_id.clone()).collect(),
            session_ids: sessions.iter().map(|s| s.session_id.clone()).collect(),
            timestamps: sessions.iter().map(|s| s.session_timestamp).collect(),
            names: encoder.names().to_vec(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Share of rows with a purchase (`NaN` when empty).
    pub fn positive_rate(&self) -> f64 {
        self.y.sum() / self.len() as f64
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Result<Dataset, FeaturesError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(FeaturesError::InvalidArgument(format!(
                "row index {bad} out of range for {} rows",
                self.len()
            )));
        }
        Ok(Dataset {
            x: self.x.select(Axis(0), indices),
            y: self.y.select(Axis(0), indices),
            user_ids: indices.iter().map(|&i| self.user_ids[i].clone()).collect(),
            session_ids: indices.iter().map(|&i| self.session_ids[i].clone()).collect(),
            timestamps: indices.iter().map(|&i| self.timestamps[i]).collect(),
            names: self.names.clone(),
        })
    }

    /// Splits into `(train, test)` by user with [`is_test_user`]: no user is on both sides.
    pub fn split_by_user(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<(Dataset, Dataset), FeaturesError> {
        check_fraction(test_fraction)?;
        let (test, train): (Vec<usize>, Vec<usize>) =
            (0..self.len()).partition(|&i| is_test_user(&self.user_ids[i], test_fraction, seed));
        Ok((self.select(&train)?, self.select(&test)?))
    }
}
