//! The JSON Schemas of handler payloads and replies, for the AsyncAPI document: a type that
//! implements `schemars::JsonSchema` (feature `service`) has one, any other has none and its
//! message is listed without a payload schema. The macros pick which by autoref
//! specialisation (`__private::SchemaByType`), so a payload type without a schema still
//! compiles.

use serde_json::Value;

#[doc(hidden)]
/// Collects the schemas of one document; the types they refer to end up in
/// `components.schemas`.
pub struct Schemas {
    #[cfg(feature = "service")]
    generator: schemars::SchemaGenerator,
}

#[doc(hidden)]
/// The schema of one type, written into [`Schemas`]: a `$ref` into the components, or the
/// schema itself for a type that is inlined (numbers, strings).
pub type SchemaOf = fn(&mut Schemas) -> Value;

impl Schemas {
    /// Where the referenced schemas live in the document.
    #[cfg(feature = "service")]
    const PATH: &'static str = "/components/schemas";

    pub(crate) fn new() -> Self {
        Self {
            #[cfg(feature = "service")]
            generator: schemars::generate::SchemaSettings::draft07()
                .with(|s| {
                    s.definitions_path = Self::PATH.into();
                    s.meta_schema = None;
                })
                .into_generator(),
        }
    }

    /// The schemas the ones handed out refer to, by name.
    pub(crate) fn components(self) -> serde_json::Map<String, Value> {
        #[cfg(feature = "service")]
        {
            let mut generator = self.generator;
            generator.take_definitions(true)
        }
        #[cfg(not(feature = "service"))]
        serde_json::Map::new()
    }
}

/// `T`'s schema, in `schemas`.
#[cfg(feature = "service")]
pub(crate) fn schema_of<T: schemars::JsonSchema>(schemas: &mut Schemas) -> Value {
    use schemars::transform::Transform;
    let mut schema = schemas.generator.subschema_for::<T>();
    // What the generator does to a root schema, for an inline one: draft-07 keywords only.
    schemars::transform::ReplacePrefixItems::default().transform(&mut schema);
    schemars::transform::ReplaceUnevaluatedProperties::default().transform(&mut schema);
    schemars::transform::RemoveRefSiblings::default().transform(&mut schema);
    schema.to_value()
}
