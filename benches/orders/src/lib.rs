//! The layout of the `orders` suite's fixture, apart from the bench target so that it can be
//! tested: which products each cart holds, so that concurrent orders never lock the same row.
//!
//! `create_order` locks the cart row and then the products of the cart (`FOR NO KEY UPDATE`,
//! in id order) to decrement their stock. Two concurrent orders that share a product therefore
//! wait for each other; the concurrent benchmarks give the tasks of a batch disjoint products so
//! that they measure how the stack scales, not one product row's lock.

use std::ops::Range;

/// Products in each tenant's catalog.
pub const PRODUCTS: usize = 200;

/// Items in the cart of the `3_items` benchmarks and of every concurrent task.
pub const SMALL_CART: usize = 3;

/// Items in the cart of the `10_items` benchmark.
pub const LARGE_CART: usize = 10;

/// The most tasks in one concurrent batch.
pub const MAX_TASKS: usize = 64;

/// The catalog indexes of the cart of task `task` (0-based) of a concurrent batch: three
/// products of its own.
pub fn task_cart(task: usize) -> Range<usize> {
    let first = SMALL_CART * (task % MAX_TASKS);
    first..first + SMALL_CART
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_of_a_batch_share_no_product() {
        let mut seen = [false; PRODUCTS];
        for task in 0..MAX_TASKS {
            let cart = task_cart(task);
            assert_eq!(cart.len(), SMALL_CART);
            for product in cart {
                assert!(product < PRODUCTS, "task {task} is outside the catalog");
                assert!(!seen[product], "product {product} is in two carts");
                seen[product] = true;
            }
        }
    }

    #[test]
    fn tasks_repeat_their_cart_in_every_batch() {
        assert_eq!(task_cart(5), task_cart(5 + MAX_TASKS));
    }
}
