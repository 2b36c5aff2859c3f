//! Growing a complete binary tree of fixed depth on public bins, with pluggable split and leaf
//! rules: the skeleton of both private trainers. Every internal node splits (the shape of the
//! tree does not depend on data); only the chosen splits and the leaf releases do.

use crate::hist::BinnedMatrix;
use crate::tree::{Node, Tree};

/// Grows a complete tree of depth `depth` over `rows`.
///
/// `choose(level, rows)` returns the split `(column, bin)` of a node (rows go left when
/// `bin(column) <= bin`, i.e. value `<= cuts[column][bin]`); `leaf(rows)` returns a leaf's
/// `(value, cover)`. Internal values and covers are then derived from the leaves.
pub(crate) fn grow_complete(
    data: &BinnedMatrix,
    rows: &mut [u32],
    depth: usize,
    mut choose: impl FnMut(usize, &[u32]) -> (usize, u8),
    mut leaf: impl FnMut(&[u32]) -> (f64, f64),
) -> Tree {
    let mut nodes: Vec<Node> = vec![Node::leaf(0.0, 1.0)];
    // (node id, start, end) of the current level.
    let mut frontier = vec![(0usize, 0usize, rows.len())];
    for level in 0..depth {
        let mut next = Vec::with_capacity(frontier.len() * 2);
        for &(id, start, end) in &frontier {
            let (f, b) = choose(level, &rows[start..end]);
            let n_left = data.partition(&mut rows[start..end], f, b);
            let left = nodes.len();
            nodes.push(Node::leaf(0.0, 1.0));
            nodes.push(Node::leaf(0.0, 1.0));
            let n = &mut nodes[id];
            n.feature = f as u32;
            n.threshold = data.cuts()[f][b as usize];
            n.left = left as u32;
            n.right = left as u32 + 1;
            next.push((left, start, start + n_left));
            next.push((left + 1, start + n_left, end));
        }
        frontier = next;
    }
    for &(id, start, end) in &frontier {
        let (value, cover) = leaf(&rows[start..end]);
        nodes[id].value = value;
        nodes[id].cover = cover;
    }
    let mut tree = Tree { nodes };
    tree.finish();
    tree
}
