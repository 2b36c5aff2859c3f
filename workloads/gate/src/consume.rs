//! Batch consumption with manual commits: moved to [`shopstream_kafka::batch`] (shared by
//! every workload); re-exported here for existing users.

pub use shopstream_kafka::batch::{
    BatchPoll, commit_batch, commit_offsets, next_offsets, own, poll_batch, poll_batch_retrying,
};
