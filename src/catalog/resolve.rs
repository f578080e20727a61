//! Turning a GPU request into one concrete offering, and, when the request cannot
//! be met, telling the Terraform user at plan time what is possible instead.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{price_order, Catalog, GpuSpec, Offering};
use crate::spec::CloudKind;

const ATTR_GPU: &str = "gpu";
const ATTR_INSTANCE_TYPE: &str = "instance_type";
/// Most instance types one error line lists: enough to choose from, short enough
/// to read in a plan.
const MAX_LISTED: usize = 5;

/// The offering a request resolved to and what it costs per hour as requested
/// (spot or on-demand).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub offering: Offering,
    pub hourly_cost_usd: f64,
}

/// A request the catalog cannot satisfy. `attribute` is the resource attribute
/// the diagnostic points at; `message` names what was asked and what is possible,
/// one group per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    /// `"gpu"` or `"instance_type"`.
    pub attribute: &'static str,
    pub message: String,
}

impl fmt::Display for ResolveError {
    /// The message alone: the attribute is shown by Terraform next to it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ResolveError {}

impl Catalog {
    /// Cheapest offering (by the price the user will pay: spot price when
    /// `spot` — offerings without a spot price are not eligible then — else
    /// on-demand; ties broken by fewer vCPUs then instance_type name) with exactly
    /// `gpu.model` and `gpu.count` for (`cloud`, `region`).
    ///
    /// With `instance_type = Some(t)`: `t` must exist in the table for that cloud
    /// and region and carry exactly that GPU model and count.
    pub fn resolve(
        &self,
        cloud: CloudKind,
        region: &str,
        gpu: &GpuSpec,
        instance_type: Option<&str>,
        spot: bool,
    ) -> Result<Resolution, ResolveError> {
        let ask = Ask {
            cloud,
            region,
            gpu,
            spot,
        };
        match instance_type {
            None => self.resolve_cheapest(&ask),
            Some(t) => self.resolve_type(&ask, t),
        }
    }

    fn resolve_cheapest(&self, ask: &Ask) -> Result<Resolution, ResolveError> {
        let exact = self.here(ask).filter(|o| ask.matches(o));
        match cheapest(exact, ask.spot) {
            Some((o, price)) => Ok(Resolution {
                offering: o.clone(),
                hourly_cost_usd: price,
            }),
            None => Err(ResolveError {
                attribute: ATTR_GPU,
                message: self.no_gpu_message(ask),
            }),
        }
    }

    fn resolve_type(&self, ask: &Ask, t: &str) -> Result<Resolution, ResolveError> {
        let want = ask.want();
        let mut rows: Vec<&Offering> = self.here(ask).filter(|o| o.instance_type == t).collect();
        if rows.is_empty() {
            return Err(ResolveError {
                attribute: ATTR_INSTANCE_TYPE,
                message: self.unknown_type_message(ask, t),
            });
        }
        let Some(o) = rows.iter().copied().find(|o| ask.matches(o)) else {
            // Several rows only for GCP N1 hosts, which take different attached GPUs.
            rows.sort_by(|a, b| (&a.gpu_model, a.gpu_count).cmp(&(&b.gpu_model, b.gpu_count)));
            let carried: Vec<String> = rows
                .iter()
                .map(|o| gpus(&o.gpu_model, o.gpu_count))
                .collect();
            let mut lines = vec![format!("{t} carries {}, not {want}.", join_or(&carried))];
            if let [only] = rows.as_slice() {
                lines.push(format!(
                    "To use {t}, set gpu = \"{}:{}\".",
                    only.gpu_model, only.gpu_count
                ));
            }
            lines.extend(self.types_with_gpu(ask, None));
            return Err(ResolveError {
                attribute: ATTR_INSTANCE_TYPE,
                message: lines.join("\n"),
            });
        };
        match o.price(ask.spot) {
            Some(price) => Ok(Resolution {
                offering: o.clone(),
                hourly_cost_usd: price,
            }),
            None => {
                let mut lines = vec![format!(
                    "{t} in {} has no spot price in the catalog: it is on-demand only \
                     (${:.2}/h). Set spot = false to use it.",
                    ask.region, o.ondemand_usd_hour
                )];
                lines.extend(self.types_with_gpu(ask, Some(t)));
                Err(ResolveError {
                    attribute: ATTR_INSTANCE_TYPE,
                    message: lines.join("\n"),
                })
            }
        }
    }

    /// Offerings of the asked cloud and region.
    fn here<'a>(&'a self, ask: &'a Ask) -> impl Iterator<Item = &'a Offering> + 'a {
        self.offerings
            .iter()
            .filter(move |o| o.cloud == ask.cloud && o.region == ask.region)
    }

    /// Why `gpu` alone cannot be met here, and what can.
    fn no_gpu_message(&self, ask: &Ask) -> String {
        let want = ask.want();
        let mut on_demand_only: Vec<&Offering> =
            self.here(ask).filter(|o| ask.matches(o)).collect();
        let mut lines = Vec::new();
        if ask.spot && !on_demand_only.is_empty() {
            // Rows exist but none resolved, so none of them has a spot price.
            on_demand_only.sort_by(|a, b| rank(a, b, false));
            let listed: Vec<String> = on_demand_only
                .iter()
                .take(MAX_LISTED)
                .map(|o| format!("{} (${:.2}/h)", o.instance_type, o.ondemand_usd_hour))
                .collect();
            lines.push(format!(
                "no {} offering in {} with exactly {want} has a spot price.",
                ask.cloud, ask.region
            ));
            lines.push(format!(
                "On-demand only here: {}; set spot = false to use it.",
                listed.join(", ")
            ));
        } else {
            lines.push(format!(
                "no {} offering in {} has exactly {want}.",
                ask.cloud, ask.region
            ));
        }
        lines.extend(self.alternatives(ask));
        lines.join("\n")
    }

    /// Why instance type `t` is not in the table for this cloud and region, and
    /// which types there carry the asked GPU.
    fn unknown_type_message(&self, ask: &Ask, t: &str) -> String {
        let mut first = format!(
            "instance type {t} is not in the catalog for {} {}",
            ask.cloud, ask.region
        );
        let elsewhere: BTreeSet<&str> = self
            .offerings
            .iter()
            .filter(|o| o.cloud == ask.cloud && o.instance_type == t)
            .map(|o| o.region.as_str())
            .collect();
        let other_cloud = self
            .offerings
            .iter()
            .find(|o| o.cloud != ask.cloud && o.instance_type.eq_ignore_ascii_case(t));
        if let Some(o) = self
            .here(ask)
            .find(|o| o.instance_type.eq_ignore_ascii_case(t))
        {
            first.push_str(&format!("; did you mean {}?", o.instance_type));
        } else if !elsewhere.is_empty() {
            first.push_str(&format!(
                "; it is listed in {}.",
                elsewhere.into_iter().collect::<Vec<_>>().join(", ")
            ));
        } else if let Some(o) = other_cloud {
            first.push_str(&format!(
                "; {} is offered on {}, not {}.",
                o.instance_type, o.cloud, ask.cloud
            ));
        } else {
            first.push('.');
        }
        let mut lines = vec![first];
        lines.extend(self.types_with_gpu(ask, None));
        lines.join("\n")
    }

    /// The types in this region carrying exactly the asked GPUs (under the asked
    /// pricing), cheapest first; when there are none, the wider alternatives.
    fn types_with_gpu(&self, ask: &Ask, exclude: Option<&str>) -> Vec<String> {
        let want = ask.want();
        let spot_note = if ask.spot { " with a spot price" } else { "" };
        let mut rows: Vec<(&Offering, f64)> = self
            .here(ask)
            .filter(|o| ask.matches(o) && Some(o.instance_type.as_str()) != exclude)
            .filter_map(|o| o.price(ask.spot).map(|p| (o, p)))
            .collect();
        if rows.is_empty() {
            let mut lines = vec![format!(
                "No {} type in {} has {want}{spot_note}.",
                ask.cloud, ask.region
            )];
            lines.extend(self.alternatives(ask));
            return lines;
        }
        rows.sort_by(|(a, _), (b, _)| rank(a, b, ask.spot));
        let mut listed: Vec<String> = rows
            .iter()
            .take(MAX_LISTED)
            .map(|(o, p)| format!("{} ({})", o.instance_type, price_label(*p, ask.spot)))
            .collect();
        if rows.len() > MAX_LISTED {
            listed.push(format!("{} more", rows.len() - MAX_LISTED));
        }
        vec![format!(
            "Types in {} with {want}{spot_note}: {}.",
            ask.region,
            listed.join(", ")
        )]
    }

    /// What else is possible, one line per group: other counts of the model here,
    /// the same GPUs in other regions of this cloud, then on other clouds.
    fn alternatives(&self, ask: &Ask) -> Vec<String> {
        let spec = format!("{}:{}", ask.gpu.model, ask.gpu.count);
        let mut lines = Vec::new();

        let regions = self.regions(ask.cloud);
        if !regions.contains(&ask.region) {
            lines.push(format!(
                "The catalog has no {} offerings in {}; its {} regions are {}.",
                ask.cloud,
                ask.region,
                ask.cloud,
                regions.join(", ")
            ));
        } else {
            let mut per_count: BTreeMap<u32, (&Offering, f64)> = BTreeMap::new();
            for o in self.here(ask).filter(|o| {
                o.gpu_model.eq_ignore_ascii_case(&ask.gpu.model) && o.gpu_count != ask.gpu.count
            }) {
                keep_cheapest(&mut per_count, o.gpu_count, o, ask.spot);
            }
            if !per_count.is_empty() {
                let listed: Vec<String> = per_count
                    .values()
                    .map(|(o, p)| {
                        format!(
                            "{}:{} ({}, {})",
                            o.gpu_model,
                            o.gpu_count,
                            o.instance_type,
                            price_label(*p, ask.spot)
                        )
                    })
                    .collect();
                lines.push(format!("Possible here: {}.", listed.join(", ")));
            } else if !self
                .here(ask)
                .any(|o| o.gpu_model.eq_ignore_ascii_case(&ask.gpu.model))
            {
                let models: BTreeSet<&str> = self.here(ask).map(|o| o.gpu_model.as_str()).collect();
                lines.push(format!(
                    "{} {} has no {} at all; GPU models here: {}.",
                    ask.cloud,
                    ask.region,
                    ask.gpu.model,
                    models.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }

        let mut other_regions: BTreeMap<&str, (&Offering, f64)> = BTreeMap::new();
        let mut other_clouds: BTreeMap<CloudKind, BTreeSet<&str>> = BTreeMap::new();
        for o in self
            .offerings
            .iter()
            .filter(|o| ask.matches(o) && o.price(ask.spot).is_some())
        {
            if o.cloud != ask.cloud {
                other_clouds.entry(o.cloud).or_default().insert(&o.region);
            } else if o.region != ask.region {
                keep_cheapest(&mut other_regions, &o.region, o, ask.spot);
            }
        }
        if !other_regions.is_empty() {
            let listed: Vec<String> = other_regions
                .iter()
                .map(|(region, (o, p))| {
                    format!(
                        "{region} ({}, {})",
                        o.instance_type,
                        price_label(*p, ask.spot)
                    )
                })
                .collect();
            lines.push(format!(
                "{spec} in other {} regions: {}.",
                ask.cloud,
                listed.join(", ")
            ));
        }
        if !other_clouds.is_empty() {
            let listed: Vec<String> = other_clouds
                .iter()
                .map(|(cloud, regions)| {
                    let regions: Vec<&str> = regions.iter().copied().collect();
                    format!("{cloud} ({})", regions.join(", "))
                })
                .collect();
            lines.push(format!("{spec} on other clouds: {}.", listed.join(", ")));
        }

        let anywhere = self
            .offerings
            .iter()
            .any(|o| ask.matches(o) && o.price(ask.spot).is_some());
        if !anywhere {
            let counts: BTreeSet<u32> = self
                .offerings
                .iter()
                .filter(|o| {
                    o.gpu_model.eq_ignore_ascii_case(&ask.gpu.model) && o.price(ask.spot).is_some()
                })
                .map(|o| o.gpu_count)
                .collect();
            let spot_note = if ask.spot { " with a spot price" } else { "" };
            if !counts.is_empty() {
                let counts: Vec<String> = counts.iter().map(u32::to_string).collect();
                lines.push(format!(
                    "No cloud in the catalog offers exactly {}{spot_note}; {} comes in counts of {}.",
                    ask.want(),
                    ask.gpu.model,
                    join_or(&counts)
                ));
            }
        }
        lines
    }
}

/// One resolution request, passed around the message builders.
struct Ask<'a> {
    cloud: CloudKind,
    region: &'a str,
    gpu: &'a GpuSpec,
    spot: bool,
}

impl Ask<'_> {
    fn matches(&self, o: &Offering) -> bool {
        o.carries(&self.gpu.model, self.gpu.count)
    }

    fn want(&self) -> String {
        gpus(&self.gpu.model, self.gpu.count)
    }
}

/// Cheapest first: by price paid, then fewer vCPUs (the smaller host for the same
/// money), then name so the choice is stable across runs.
fn rank(a: &Offering, b: &Offering, spot: bool) -> Ordering {
    price_order(a, b, spot)
        .then(a.vcpus.cmp(&b.vcpus))
        .then_with(|| a.instance_type.cmp(&b.instance_type))
}

/// The cheapest row that has a price in this mode, with that price.
fn cheapest<'a>(
    rows: impl Iterator<Item = &'a Offering>,
    spot: bool,
) -> Option<(&'a Offering, f64)> {
    rows.filter_map(|o| o.price(spot).map(|p| (o, p)))
        .min_by(|(a, _), (b, _)| rank(a, b, spot))
}

/// Keeps, per key, the cheapest row that has a price in this mode.
fn keep_cheapest<'a, K: Ord>(
    map: &mut BTreeMap<K, (&'a Offering, f64)>,
    key: K,
    o: &'a Offering,
    spot: bool,
) {
    let Some(price) = o.price(spot) else {
        return;
    };
    match map.get(&key) {
        Some((best, _)) if rank(best, o, spot) != Ordering::Greater => {}
        _ => {
            map.insert(key, (o, price));
        }
    }
}

fn gpus(model: &str, count: u32) -> String {
    format!("{count} × {model}")
}

fn price_label(price: f64, spot: bool) -> String {
    if spot {
        format!("${price:.2}/h spot")
    } else {
        format!("${price:.2}/h")
    }
}

/// "a", "a or b", "a, b or c".
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog;
    use super::*;

    fn gpu(s: &str) -> GpuSpec {
        s.parse().unwrap()
    }

    fn ok(cloud: CloudKind, region: &str, g: &str, t: Option<&str>, spot: bool) -> Resolution {
        catalog()
            .unwrap()
            .resolve(cloud, region, &gpu(g), t, spot)
            .unwrap()
    }

    fn err(cloud: CloudKind, region: &str, g: &str, t: Option<&str>, spot: bool) -> ResolveError {
        catalog()
            .unwrap()
            .resolve(cloud, region, &gpu(g), t, spot)
            .unwrap_err()
    }

    fn assert_contains(e: &ResolveError, needles: &[&str]) {
        for n in needles {
            assert!(e.message.contains(n), "missing {n:?} in:\n{}", e.message);
        }
        assert!(e.message.lines().count() <= 8, "too long:\n{}", e.message);
    }

    #[test]
    fn picks_cheapest_t4_on_aws() {
        // g4dn.xlarge 0.526 beats g4dn.2xlarge 0.752 and the larger g4dn sizes.
        let r = ok(CloudKind::Aws, "us-east-1", "T4", None, false);
        assert_eq!(r.offering.instance_type, "g4dn.xlarge");
        assert_eq!(r.hourly_cost_usd, 0.526);
        assert_eq!(r.offering.gpu_count, 1);
    }

    #[test]
    fn picks_p4d_for_a100_8_and_uses_spot_price_when_asked() {
        let r = ok(CloudKind::Aws, "us-east-1", "A100:8", None, false);
        assert_eq!(r.offering.instance_type, "p4d.24xlarge");
        assert_eq!(r.hourly_cost_usd, 21.957642);

        let r = ok(CloudKind::Aws, "us-east-1", "a100:8", None, true);
        assert_eq!(r.offering.instance_type, "p4d.24xlarge");
        assert_eq!(r.hourly_cost_usd, 2.4655);
    }

    #[test]
    fn picks_cheapest_on_gcp_n1_host_with_attached_t4() {
        // n1-standard-4 + 2 × T4 is the cheapest 2 × T4 shape in us-central1.
        let r = ok(CloudKind::Gcp, "us-central1", "T4:2", None, false);
        assert_eq!(r.offering.instance_type, "n1-standard-4");
        assert_eq!(r.offering.gpu_count, 2);
        assert_eq!(
            r.offering.gcp_accelerator_type.as_deref(),
            Some("nvidia-tesla-t4")
        );
        assert_eq!(r.hourly_cost_usd, 0.89);
    }

    #[test]
    fn ties_go_to_fewer_vcpus_then_name() {
        let csv = "cloud,instance_type,gpu_model,gpu_count,gpu_memory_gb,vcpus,memory_gb,\
                   region,ondemand_usd_hour,spot_usd_hour,gcp_accelerator_type\n\
                   aws,b.big,T4,1,16,8,32,r,1.0,,\n\
                   aws,c.small,T4,1,16,4,16,r,1.0,,\n\
                   aws,a.small,T4,1,16,4,16,r,1.0,,\n";
        let c = Catalog::from_csv(csv).unwrap();
        let r = c
            .resolve(CloudKind::Aws, "r", &gpu("T4"), None, false)
            .unwrap();
        assert_eq!(r.offering.instance_type, "a.small");
    }

    #[test]
    fn impossible_count_lists_other_counts_regions_and_clouds() {
        let e = err(CloudKind::Aws, "us-east-1", "A100:3", None, false);
        assert_eq!(e.attribute, "gpu");
        assert_contains(
            &e,
            &[
                "no aws offering in us-east-1 has exactly 3 × A100.",
                "Possible here: A100:8 (p4d.24xlarge, $21.96/h).",
                "No cloud in the catalog offers exactly 3 × A100",
                "1, 2, 4, 8 or 16",
            ],
        );
        assert_eq!(e.to_string(), e.message);
    }

    #[test]
    fn model_count_elsewhere_lists_regions_and_clouds() {
        // p4de (A100-80GB:8) exists in us-east-1 only on AWS; GCP has a2-ultragpu-8g.
        let e = err(CloudKind::Aws, "eu-west-1", "A100-80GB:8", None, false);
        assert_contains(
            &e,
            &[
                "no aws offering in eu-west-1 has exactly 8 × A100-80GB.",
                "A100-80GB:8 in other aws regions: us-east-1 (p4de.24xlarge, $27.45/h)",
                "A100-80GB:8 on other clouds: gcp (",
                "europe-west4",
            ],
        );
        assert!(!e.message.contains("No cloud in the catalog"));
    }

    #[test]
    fn model_missing_in_region_lists_models_here() {
        let e = err(CloudKind::Azure, "eastus", "L4", None, false);
        assert_contains(
            &e,
            &[
                "no azure offering in eastus has exactly 1 × L4.",
                "azure eastus has no L4 at all; GPU models here:",
                "A100",
                "L4:1 on other clouds: aws (",
                "gcp (",
            ],
        );
    }

    #[test]
    fn unknown_region_lists_the_clouds_regions() {
        let e = err(CloudKind::Aws, "ap-south-1", "T4", None, false);
        assert_contains(
            &e,
            &[
                "no aws offering in ap-south-1 has exactly 1 × T4.",
                "its aws regions are eu-west-1, us-east-1, us-west-2",
                "T4:1 in other aws regions: eu-west-1 (g4dn.xlarge",
            ],
        );
    }

    #[test]
    fn spot_without_spot_price_says_on_demand_only() {
        // p5.4xlarge is the only 1 × H100 on AWS and has no spot price.
        let e = err(CloudKind::Aws, "us-east-1", "H100:1", None, true);
        assert_eq!(e.attribute, "gpu");
        assert_contains(
            &e,
            &[
                "with exactly 1 × H100 has a spot price",
                "On-demand only here: p5.4xlarge ($6.88/h); set spot = false",
                "Possible here: H100:8 (p5.48xlarge, $",
                "/h spot)",
            ],
        );
        // The same request on-demand resolves.
        let r = ok(CloudKind::Aws, "us-east-1", "H100:1", None, false);
        assert_eq!(r.offering.instance_type, "p5.4xlarge");
        assert_eq!(r.hourly_cost_usd, 6.88);
    }

    #[test]
    fn instance_type_override_accepted() {
        let r = ok(
            CloudKind::Aws,
            "us-east-1",
            "T4",
            Some("g4dn.2xlarge"),
            false,
        );
        assert_eq!(r.offering.instance_type, "g4dn.2xlarge");
        assert_eq!(r.hourly_cost_usd, 0.752);

        let r = ok(
            CloudKind::Aws,
            "us-east-1",
            "T4",
            Some("g4dn.2xlarge"),
            true,
        );
        assert_eq!(r.hourly_cost_usd, 0.3112);

        // A GCP N1 host picks the row with the asked accelerator count.
        let r = ok(
            CloudKind::Gcp,
            "us-central1",
            "T4:4",
            Some("n1-standard-8"),
            false,
        );
        assert_eq!(r.offering.gpu_count, 4);
    }

    #[test]
    fn instance_type_with_other_gpu_rejected() {
        let e = err(
            CloudKind::Aws,
            "us-east-1",
            "A100:8",
            Some("g5.xlarge"),
            false,
        );
        assert_eq!(e.attribute, "instance_type");
        assert_contains(
            &e,
            &[
                "g5.xlarge carries 1 × A10G, not 8 × A100.",
                "To use g5.xlarge, set gpu = \"A10G:1\".",
                "Types in us-east-1 with 8 × A100: p4d.24xlarge ($21.96/h).",
            ],
        );
    }

    #[test]
    fn gcp_n1_host_lists_all_its_shapes() {
        let e = err(
            CloudKind::Gcp,
            "us-central1",
            "T4:8",
            Some("n1-standard-8"),
            false,
        );
        assert_eq!(e.attribute, "instance_type");
        assert_contains(
            &e,
            &[
                "n1-standard-8 carries 1 × T4, 2 × T4, 4 × T4 or 1 × V100, not 8 × T4.",
                "No gcp type in us-central1 has 8 × T4.",
                "Possible here: T4:1 (n1-standard-4, $0.54/h), T4:2 (n1-standard-4, $0.89/h), T4:4 (",
                "T4:8 on other clouds: aws (",
            ],
        );
        assert!(!e.message.contains("set gpu ="));
    }

    #[test]
    fn unknown_instance_type_lists_types_with_that_gpu() {
        let e = err(CloudKind::Aws, "us-east-1", "T4", Some("g9.mega"), false);
        assert_eq!(e.attribute, "instance_type");
        assert_contains(
            &e,
            &[
                "instance type g9.mega is not in the catalog for aws us-east-1.",
                "Types in us-east-1 with 1 × T4: g4dn.xlarge ($0.53/h), g4dn.2xlarge ($0.75/h)",
            ],
        );
    }

    #[test]
    fn long_type_lists_are_cut() {
        let mut csv = String::from(
            "cloud,instance_type,gpu_model,gpu_count,gpu_memory_gb,vcpus,memory_gb,\
             region,ondemand_usd_hour,spot_usd_hour,gcp_accelerator_type\n",
        );
        for i in 1..=8 {
            csv.push_str(&format!("aws,t{i},T4,1,16,4,16,r,{i}.0,,\n"));
        }
        let c = Catalog::from_csv(&csv).unwrap();
        let e = c
            .resolve(CloudKind::Aws, "r", &gpu("T4"), Some("nope"), false)
            .unwrap_err();
        assert_contains(
            &e,
            &["with 1 × T4: t1 ($1.00/h), t2 ($2.00/h), t3 ($3.00/h), t4 ($4.00/h), t5 ($5.00/h), 3 more."],
        );
    }

    #[test]
    fn instance_type_hints_case_region_and_cloud() {
        let e = err(
            CloudKind::Aws,
            "us-east-1",
            "T4",
            Some("G4DN.XLARGE"),
            false,
        );
        assert_contains(&e, &["did you mean g4dn.xlarge?"]);

        // g6 (L4) is not in eu-west-1.
        let e = err(CloudKind::Aws, "eu-west-1", "L4", Some("g6.xlarge"), false);
        assert_contains(&e, &["it is listed in us-east-1, us-west-2."]);

        let e = err(
            CloudKind::Gcp,
            "us-central1",
            "A100:8",
            Some("p4d.24xlarge"),
            false,
        );
        assert_contains(
            &e,
            &[
                "p4d.24xlarge is offered on aws, not gcp.",
                "Types in us-central1 with 8 × A100: a2-highgpu-8g",
            ],
        );
    }

    #[test]
    fn instance_type_spot_without_spot_price() {
        let e = err(
            CloudKind::Aws,
            "us-east-1",
            "H100:1",
            Some("p5.4xlarge"),
            true,
        );
        assert_eq!(e.attribute, "instance_type");
        assert_contains(
            &e,
            &[
                "p5.4xlarge in us-east-1 has no spot price in the catalog: it is on-demand only ($6.88/h). Set spot = false",
                "No aws type in us-east-1 has 1 × H100 with a spot price.",
                "Possible here: H100:8 (p5.48xlarge,",
            ],
        );
    }

    #[test]
    fn join_or_forms() {
        let s = |v: &[&str]| join_or(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]), "");
        assert_eq!(s(&["a"]), "a");
        assert_eq!(s(&["a", "b"]), "a or b");
        assert_eq!(s(&["a", "b", "c"]), "a, b or c");
    }
}
