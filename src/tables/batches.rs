//! How migrate and reencrypt size their batches: by blocks, each batch a range of the
//! table's blocks that holds about `batch_size` rows. The first from the planner's
//! statistics; reencrypt sizes each next one from the density of the last.

/// Blocks that hold about `batch_size` rows at `rows_per_block` (the planner's
/// `reltuples / relpages`, None when the table was never analyzed: one block).
pub fn first_batch_blocks(batch_size: i32, rows_per_block: Option<f64>) -> i32 {
    rows_per_block
        .map_or(1.0, |per_block| (batch_size as f64 / per_block).ceil())
        .clamp(1.0, i32::MAX as f64) as i32
}

/// Sizes the next batch to about `batch_size` rows from the density of the last one, at
/// most twice as many blocks.
pub fn next_batch_blocks(blocks_read: i64, rows_read: i64, batch_size: i32) -> i32 {
    let grown = blocks_read.saturating_mul(2).max(1);
    let sized = if rows_read == 0 {
        grown
    } else {
        (blocks_read.saturating_mul(batch_size as i64) / rows_read).clamp(1, grown)
    };
    sized.min(i32::MAX as i64) as i32
}
