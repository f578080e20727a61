//! Data source `aienv_gpu_offerings`: the embedded GPU catalog, filtered, with
//! prices. Makes no cloud call.

use std::collections::BTreeMap;

use crate::catalog::{catalog, OfferingQuery};
use crate::spec::CloudKind;
use crate::tfplugin::schema::{Attribute, Block, Schema};
use crate::tfplugin::server::StateResponse;
use crate::tfplugin::value::Number;
use crate::tfplugin::{Diagnostic, Diagnostics, Type, Value};

pub const TYPE_NAME: &str = "aienv_gpu_offerings";

fn offering_type() -> Type {
    Type::object([
        ("cloud", Type::String),
        ("region", Type::String),
        ("instance_type", Type::String),
        ("gpu_model", Type::String),
        ("gpu_count", Type::Number),
        ("gpu_memory_gb", Type::Number),
        ("vcpus", Type::Number),
        ("memory_gb", Type::Number),
        ("ondemand_usd_hour", Type::Number),
        ("spot_usd_hour", Type::Number),
        ("hourly_cost_usd", Type::Number),
    ])
}

pub fn schema() -> Schema {
    Schema {
        version: 0,
        block: Block {
            description: "Lists GPU offerings (instance types with their GPUs and hourly prices) from the catalog \
embedded in the provider, cheapest first."
                .into(),
            attributes: vec![
                Attribute::optional("cloud", Type::String, "Only this cloud: `aws`, `gcp` or `azure`."),
                Attribute::optional("region", Type::String, "Only this region."),
                Attribute::optional("gpu", Type::String, "Only this GPU model (`A100`), or model and exact count (`A100:8`); case-insensitive."),
                Attribute::optional("min_gpu_count", Type::Number, "At least this many GPUs."),
                Attribute::optional("max_hourly_usd", Type::Number, "At most this hourly price (spot price when `spot = true`)."),
                Attribute::optional("spot", Type::Bool, "Price offerings at their spot price and drop those without one."),
                Attribute::computed("id", Type::String, "A fingerprint of the filters."),
                Attribute::computed("offerings", Type::List(Box::new(offering_type())), "Matching offerings, cheapest first: `cloud`, `region`, `instance_type`, `gpu_model`, `gpu_count`, `gpu_memory_gb`, `vcpus`, `memory_gb`, `ondemand_usd_hour`, `spot_usd_hour` (null when none), `hourly_cost_usd` (the price for the `spot` choice)."),
            ],
            blocks: vec![],
        },
    }
}

struct Filters {
    query: OfferingQuery,
    exact_count: Option<u32>,
}

fn filters(config: &Value) -> Result<Filters, Diagnostics> {
    let mut diags = Diagnostics::new();
    let mut query = OfferingQuery::default();
    let mut exact_count = None;
    if let Some(c) = config.attr("cloud").as_str() {
        match c.parse::<CloudKind>() {
            Ok(k) => query.cloud = Some(k),
            Err(e) => diags.push(Diagnostic::error("Invalid cloud", e).at_attr("cloud")),
        }
    }
    query.region = config.attr("region").as_str().map(str::to_string);
    if let Some(g) = config.attr("gpu").as_str() {
        match catalog() {
            Ok(cat) => {
                let models = cat.models();
                let spec = if g.contains(':') {
                    crate::catalog::GpuSpec::parse_with_models(g, &models)
                        .map(|s| (s.model, Some(s.count)))
                } else {
                    crate::catalog::GpuSpec::parse_with_models(g, &models).map(|s| (s.model, None))
                };
                match spec {
                    Ok((model, count)) => {
                        query.gpu_model = Some(model);
                        exact_count = count;
                    }
                    Err(e) => {
                        diags.push(Diagnostic::error("Invalid gpu", e.to_string()).at_attr("gpu"))
                    }
                }
            }
            Err(e) => diags.push(Diagnostic::error("GPU catalog unavailable", e.to_string())),
        }
    }
    if let Some(n) = config.attr("min_gpu_count").as_number() {
        match crate::resources::validate::whole_in_range(n, 1, crate::catalog::MAX_GPU_COUNT) {
            Ok(v) => query.min_gpu_count = Some(v),
            Err(e) => {
                diags.push(Diagnostic::error("Invalid min_gpu_count", e).at_attr("min_gpu_count"))
            }
        }
    }
    if let Some(n) = config.attr("max_hourly_usd").as_number() {
        let v = n.to_f64();
        if v.is_finite() && v >= 0.0 {
            query.max_hourly_usd = Some(v);
        } else {
            diags.push(
                Diagnostic::error("Invalid max_hourly_usd", "must be zero or more.")
                    .at_attr("max_hourly_usd"),
            );
        }
    }
    query.spot = config.attr("spot").as_bool().unwrap_or(false);
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(Filters { query, exact_count })
    }
}

pub fn validate(config: &Value) -> Diagnostics {
    filters(config).err().unwrap_or_default()
}

fn num(v: f64) -> Value {
    Number::from_f64_shortest(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub fn read(config: Value, _default_cloud: Option<CloudKind>) -> StateResponse {
    let f = match filters(&config) {
        Ok(f) => f,
        Err(d) => {
            return StateResponse {
                diagnostics: d,
                ..Default::default()
            }
        }
    };
    let cat = match catalog() {
        Ok(c) => c,
        Err(e) => {
            return StateResponse {
                diagnostics: Diagnostic::error("GPU catalog unavailable", e.to_string()).into(),
                ..Default::default()
            }
        }
    };
    let offerings: Vec<Value> = cat
        .filter(&f.query)
        .into_iter()
        .filter(|o| f.exact_count.is_none_or(|c| o.gpu_count == c))
        .map(|o| {
            let price = o.price(f.query.spot).unwrap_or(o.ondemand_usd_hour);
            Value::object([
                ("cloud", Value::from(o.cloud.as_str())),
                ("region", Value::from(o.region.as_str())),
                ("instance_type", Value::from(o.instance_type.as_str())),
                ("gpu_model", Value::from(o.gpu_model.as_str())),
                ("gpu_count", Value::from(i64::from(o.gpu_count))),
                ("gpu_memory_gb", Value::from(i64::from(o.gpu_memory_gb))),
                ("vcpus", Value::from(i64::from(o.vcpus))),
                ("memory_gb", num(o.memory_gb)),
                ("ondemand_usd_hour", num(o.ondemand_usd_hour)),
                (
                    "spot_usd_hour",
                    o.spot_usd_hour.map(num).unwrap_or(Value::Null),
                ),
                ("hourly_cost_usd", num(price)),
            ])
        })
        .collect();
    let mut state: BTreeMap<String, Value> = match config {
        Value::Object(m) => m,
        _ => BTreeMap::new(),
    };
    let id = format!(
        "{}/{}/{}/{}",
        f.query.cloud.map(|c| c.as_str()).unwrap_or("*"),
        f.query.region.as_deref().unwrap_or("*"),
        f.query.gpu_model.as_deref().unwrap_or("*"),
        offerings.len()
    );
    state.insert("id".into(), Value::from(id));
    state.insert("offerings".into(), Value::List(offerings));
    StateResponse {
        new_state: Value::Object(state),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_cloud_region_and_exact_gpu() {
        let config = Value::object([
            ("cloud", Value::from("aws")),
            ("region", Value::from("us-east-1")),
            ("gpu", Value::from("a100:8")),
        ]);
        let out = read(config, None);
        assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
        let list = out
            .new_state
            .attr("offerings")
            .as_list()
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        assert!(!list.is_empty());
        for o in &list {
            assert_eq!(o.attr("gpu_model").as_str(), Some("A100"));
            assert_eq!(o.attr("gpu_count").as_i64(), Some(8));
            assert_eq!(o.attr("cloud").as_str(), Some("aws"));
        }
    }

    #[test]
    fn bad_filters_name_the_attribute() {
        let d = validate(&Value::object([
            ("cloud", Value::from("ibm")),
            ("gpu", Value::from("Z999")),
        ]));
        let paths: Vec<_> = d
            .iter()
            .map(|d| crate::tfplugin::value::format_path(&d.path))
            .collect();
        assert_eq!(paths, vec!["cloud", "gpu"]);
    }
}
