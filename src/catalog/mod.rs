//! The built-in GPU catalog: which instance types carry which GPUs, where, and at
//! what hourly price. Resources use it at plan time to turn `gpu` (and an optional
//! `instance_type`) into one concrete offering and a cost estimate; the
//! `aienv_gpu_offerings` data source lists it.
//!
//! - `offerings`: the embedded table and its parser.
//! - `gpu_spec`: the user's `MODEL[:COUNT]` value.
//! - `resolve`: picking an offering, and the error text when none fits.

mod gpu_spec;
mod offerings;
mod resolve;

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use crate::spec::CloudKind;

pub use gpu_spec::{GpuSpec, GpuSpecError, MAX_GPU_COUNT};
pub use offerings::{CatalogError, Offering};
pub use resolve::{Resolution, ResolveError};

/// The parsed table. Obtain it with [`catalog`].
#[derive(Debug, Clone)]
pub struct Catalog {
    offerings: Vec<Offering>,
}

/// The built-in catalog, parsed on first use and shared afterwards. A parse error
/// is kept too, so every caller gets the same error without re-parsing.
pub fn catalog() -> Result<&'static Catalog, CatalogError> {
    static CATALOG: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();
    CATALOG
        .get_or_init(|| Catalog::from_csv(offerings::EMBEDDED_CSV))
        .as_ref()
        .map_err(Clone::clone)
}

/// Filters for [`Catalog::filter`]. Every `None` means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfferingQuery {
    pub cloud: Option<CloudKind>,
    /// Exact region name, e.g. `us-east-1`.
    pub region: Option<String>,
    /// Exact model, case-insensitive (`a100` matches `A100`, not `A100-80GB`).
    pub gpu_model: Option<String>,
    pub min_gpu_count: Option<u32>,
    /// Upper bound on the price the user would pay (spot price when `spot`).
    pub max_hourly_usd: Option<f64>,
    /// Price by spot, and keep only offerings that have a spot price.
    pub spot: bool,
}

impl Catalog {
    pub(crate) fn from_csv(csv: &str) -> Result<Self, CatalogError> {
        Ok(Catalog {
            offerings: offerings::parse_offerings(csv)?,
        })
    }

    /// Every row, in table order.
    pub fn offerings(&self) -> &[Offering] {
        &self.offerings
    }

    /// GPU models in the table (canonical spelling), sorted, unique.
    pub fn models(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self
            .offerings
            .iter()
            .map(|o| o.gpu_model.as_str())
            .collect();
        set.into_iter().collect()
    }

    /// Regions in the table for a cloud, sorted. Zones are not tracked.
    pub fn regions(&self, cloud: CloudKind) -> Vec<&str> {
        let set: BTreeSet<&str> = self
            .offerings
            .iter()
            .filter(|o| o.cloud == cloud)
            .map(|o| o.region.as_str())
            .collect();
        set.into_iter().collect()
    }

    /// Offerings matching every set filter, cheapest first (by the price the user
    /// would pay), then by cloud, region, instance type, model and count so the
    /// order is stable.
    pub fn filter(&self, q: &OfferingQuery) -> Vec<&Offering> {
        let mut out: Vec<&Offering> = self
            .offerings
            .iter()
            .filter(|o| q.cloud.is_none_or(|c| o.cloud == c))
            .filter(|o| q.region.as_deref().is_none_or(|r| o.region == r))
            .filter(|o| {
                q.gpu_model
                    .as_deref()
                    .is_none_or(|m| o.gpu_model.eq_ignore_ascii_case(m.trim()))
            })
            .filter(|o| q.min_gpu_count.is_none_or(|n| o.gpu_count >= n))
            .filter(|o| match o.price(q.spot) {
                None => false,
                Some(p) => q.max_hourly_usd.is_none_or(|max| p <= max),
            })
            .collect();
        out.sort_by(|a, b| {
            price_order(a, b, q.spot)
                .then(a.cloud.cmp(&b.cloud))
                .then_with(|| a.region.cmp(&b.region))
                .then_with(|| a.instance_type.cmp(&b.instance_type))
                .then_with(|| a.gpu_model.cmp(&b.gpu_model))
                .then(a.gpu_count.cmp(&b.gpu_count))
        });
        out
    }
}

/// Orders by the price paid; rows without a price in this mode sort last.
fn price_order(a: &Offering, b: &Offering, spot: bool) -> Ordering {
    match (a.price(spot), b.price(spot)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_loads_once() {
        let a = catalog().unwrap();
        let b = catalog().unwrap();
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.offerings().len(), 240);
    }

    #[test]
    fn models_are_sorted_unique() {
        let models = catalog().unwrap().models();
        assert_eq!(
            models,
            [
                "A10",
                "A100",
                "A100-80GB",
                "A10G",
                "B200",
                "H100",
                "H100-MEGA",
                "H100-NVL",
                "H200",
                "L4",
                "L40S",
                "T4",
                "V100",
                "V100-32GB"
            ]
        );
    }

    #[test]
    fn regions_per_cloud() {
        let c = catalog().unwrap();
        assert_eq!(
            c.regions(CloudKind::Aws),
            ["eu-west-1", "us-east-1", "us-west-2"]
        );
        assert_eq!(
            c.regions(CloudKind::Gcp),
            ["europe-west4", "us-central1", "us-east1"]
        );
        assert_eq!(c.regions(CloudKind::Azure), ["eastus", "westus2"]);
    }

    #[test]
    fn filter_by_everything() {
        let c = catalog().unwrap();
        let q = OfferingQuery {
            cloud: Some(CloudKind::Aws),
            region: Some("us-east-1".into()),
            gpu_model: Some("t4".into()),
            min_gpu_count: Some(4),
            max_hourly_usd: Some(5.0),
            spot: false,
        };
        let types: Vec<&str> = c
            .filter(&q)
            .iter()
            .map(|o| o.instance_type.as_str())
            .collect();
        assert_eq!(types, ["g4dn.12xlarge"]);
    }

    #[test]
    fn filter_model_is_exact_and_sorted_by_price() {
        let c = catalog().unwrap();
        let q = OfferingQuery {
            gpu_model: Some("A100".into()),
            ..Default::default()
        };
        let rows = c.filter(&q);
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|o| o.gpu_model == "A100"));
        assert!(rows
            .windows(2)
            .all(|w| w[0].ondemand_usd_hour <= w[1].ondemand_usd_hour));
    }

    #[test]
    fn filter_spot_uses_spot_price_and_drops_rows_without_one() {
        let c = catalog().unwrap();
        let all = c.filter(&OfferingQuery::default());
        assert_eq!(all.len(), 240);
        let q = OfferingQuery {
            spot: true,
            ..Default::default()
        };
        let spot = c.filter(&q);
        assert!(spot.len() < all.len());
        assert!(spot.iter().all(|o| o.spot_usd_hour.is_some()));
        assert!(!spot.iter().any(|o| o.instance_type == "p5.4xlarge"));
        assert!(spot
            .windows(2)
            .all(|w| w[0].spot_usd_hour <= w[1].spot_usd_hour));

        // p4d in us-east-1 is 21.96/h on-demand but 2.47/h spot.
        let q = OfferingQuery {
            region: Some("us-east-1".into()),
            gpu_model: Some("A100".into()),
            max_hourly_usd: Some(3.0),
            spot: true,
            ..Default::default()
        };
        let rows = c.filter(&q);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].instance_type, "p4d.24xlarge");
        assert!(c.filter(&OfferingQuery { spot: false, ..q }).is_empty());
    }
}
