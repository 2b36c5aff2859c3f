//! The furniture shop's catalogue, exactly as the original system had it.

/// One product of the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// Product id, `1..=10`.
    pub id: u8,
    /// Display name, also used as `exitPage`.
    pub name: &'static str,
    /// Price in whole currency units.
    pub price: u32,
    /// Room category.
    pub category: &'static str,
}

/// Number of products in the catalogue; ids run `1..=PRODUCT_COUNT`.
pub const PRODUCT_COUNT: usize = 10;

/// The ten products, indexed by `id - 1`.
pub const PRODUCTS: [Product; PRODUCT_COUNT] = [
    Product { id: 1, name: "sofa", price: 5000, category: "living room" },
    Product { id: 2, name: "coffee table", price: 500, category: "living room" },
    Product { id: 3, name: "accent chair", price: 750, category: "living room" },
    Product { id: 4, name: "bed", price: 4500, category: "bedroom" },
    Product { id: 5, name: "bedside table", price: 590, category: "bedroom" },
    Product { id: 6, name: "dresser", price: 1290, category: "bedroom" },
    Product { id: 7, name: "office desk", price: 1150, category: "office" },
    Product { id: 8, name: "office chair", price: 899, category: "office" },
    Product { id: 9, name: "dining table", price: 2500, category: "dining room" },
    Product { id: 10, name: "dining chairs", price: 650, category: "dining room" },
];

/// The sets of products that shoppers view together, as in the original generator.
pub const VIEWED_TOGETHER: [&[u8]; 4] = [&[9, 10], &[1, 2, 3], &[4, 5, 6], &[7, 8]];

/// The product with this id, if it exists.
pub fn product(id: u8) -> Option<&'static Product> {
    PRODUCTS.get(usize::from(id).checked_sub(1)?)
}

/// The product with this display name, if it exists.
pub fn product_by_name(name: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.name == name)
}

/// True when every id of `ids` belongs to one viewed-together set (and there are at least two).
pub fn is_viewed_together(ids: &[u8]) -> bool {
    ids.len() >= 2 && VIEWED_TOGETHER.iter().any(|set| ids.iter().all(|id| set.contains(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_positions() {
        for (i, p) in PRODUCTS.iter().enumerate() {
            assert_eq!(usize::from(p.id), i + 1);
            assert_eq!(product(p.id), Some(p));
            assert_eq!(product_by_name(p.name), Some(p));
        }
        assert_eq!(product(0), None);
        assert_eq!(product(11), None);
    }

    #[test]
    fn viewed_together_sets() {
        assert!(is_viewed_together(&[9, 10]));
        assert!(is_viewed_together(&[3, 1]));
        assert!(!is_viewed_together(&[3]));
        assert!(!is_viewed_together(&[3, 4]));
    }
}
