//! Our description of a schema, turned into the protocol's `Schema` and into the
//! cty object type used to decode values. Descriptions are written once here and
//! also feed the generated docs.

use std::collections::BTreeMap;

use super::proto::tfplugin6 as pb;
use super::value::Type;

/// A resource, data source or provider schema with its version.
#[derive(Debug, Clone)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    pub description: String,
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
    /// Optional; the provider fills it when the configuration leaves it out.
    OptionalComputed,
    Computed,
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: Type,
    pub description: String,
    pub presence: Presence,
    pub sensitive: bool,
    /// Documentation only: a change replaces the resource.
    pub forces_replacement: bool,
    /// Documentation only: the default the provider applies.
    pub default: Option<&'static str>,
}

impl Attribute {
    fn new(name: &'static str, ty: Type, presence: Presence, description: &str) -> Self {
        Attribute {
            name,
            ty,
            description: description.to_string(),
            presence,
            sensitive: false,
            forces_replacement: false,
            default: None,
        }
    }
    pub fn required(name: &'static str, ty: Type, description: &str) -> Self {
        Self::new(name, ty, Presence::Required, description)
    }
    pub fn optional(name: &'static str, ty: Type, description: &str) -> Self {
        Self::new(name, ty, Presence::Optional, description)
    }
    pub fn optional_computed(name: &'static str, ty: Type, description: &str) -> Self {
        Self::new(name, ty, Presence::OptionalComputed, description)
    }
    pub fn computed(name: &'static str, ty: Type, description: &str) -> Self {
        Self::new(name, ty, Presence::Computed, description)
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn forces_replacement(mut self) -> Self {
        self.forces_replacement = true;
        self
    }
    pub fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one block; absent = null.
    Single,
    List,
}

#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub name: &'static str,
    pub nesting: Nesting,
    pub block: Block,
    pub max_items: i64,
}

impl Block {
    /// The cty object type of a value of this block.
    pub fn value_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.to_string(), a.ty.clone()))
            .collect();
        for b in &self.blocks {
            let inner = b.block.value_type();
            let ty = match b.nesting {
                Nesting::Single => inner,
                Nesting::List => Type::List(Box::new(inner)),
            };
            attrs.insert(b.name.to_string(), ty);
        }
        Type::Object(attrs)
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    fn to_proto(&self) -> pb::schema::Block {
        pb::schema::Block {
            version: 0,
            attributes: self
                .attributes
                .iter()
                .map(|a| pb::schema::Attribute {
                    name: a.name.to_string(),
                    r#type: a.ty.to_json(),
                    nested_type: None,
                    description: a.description.clone(),
                    required: a.presence == Presence::Required,
                    optional: matches!(a.presence, Presence::Optional | Presence::OptionalComputed),
                    computed: matches!(a.presence, Presence::Computed | Presence::OptionalComputed),
                    sensitive: a.sensitive,
                    description_kind: pb::StringKind::Markdown as i32,
                    deprecated: false,
                })
                .collect(),
            block_types: self
                .blocks
                .iter()
                .map(|b| pb::schema::NestedBlock {
                    type_name: b.name.to_string(),
                    block: Some(b.block.to_proto()),
                    nesting: match b.nesting {
                        Nesting::Single => pb::schema::nested_block::NestingMode::Single as i32,
                        Nesting::List => pb::schema::nested_block::NestingMode::List as i32,
                    },
                    min_items: 0,
                    max_items: b.max_items,
                })
                .collect(),
            description: self.description.clone(),
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: false,
        }
    }
}

impl Schema {
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }

    pub fn to_proto(&self) -> pb::Schema {
        let mut block = self.block.to_proto();
        block.version = self.version;
        pb::Schema {
            version: self.version,
            block: Some(block),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_type_includes_nested_single_blocks_as_objects() {
        let schema = Schema {
            version: 1,
            block: Block {
                description: String::new(),
                attributes: vec![Attribute::optional("a", Type::String, "A")],
                blocks: vec![NestedBlock {
                    name: "aws",
                    nesting: Nesting::Single,
                    max_items: 1,
                    block: Block {
                        attributes: vec![Attribute::optional("region", Type::String, "R")],
                        ..Block::default()
                    },
                }],
            },
        };
        let ty = schema.value_type();
        let Type::Object(attrs) = ty else {
            panic!("not an object")
        };
        assert_eq!(attrs.get("a"), Some(&Type::String));
        assert!(matches!(attrs.get("aws"), Some(Type::Object(_))));
        let p = schema.to_proto();
        assert_eq!(p.version, 1);
        let block = p.block.unwrap_or_default();
        assert_eq!(block.block_types.len(), 1);
        assert!(block.attributes[0].optional && !block.attributes[0].computed);
    }
}
