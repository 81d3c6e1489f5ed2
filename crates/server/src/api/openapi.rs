//! The OpenAPI document of `/v1`: the operations the handlers declare, the security schemes, and
//! the refusals every operation can answer, derived from the code table.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, captures, handlers, stream, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "facerec", description = "Face registration and recognition. Images are sent as multipart/form-data \
        (field `image`); every /v1 route needs an API key when keys are configured."),
    paths(
        handlers::health, handlers::ready, handlers::register, handlers::recognize, handlers::verify,
        handlers::detect, handlers::list_persons, handlers::get_person, handlers::export_person,
        handlers::update_person, handlers::calibration, handlers::recalibrate,
        handlers::delete_person, handlers::list_faces, handlers::add_face, handlers::delete_face,
        stream::ticket, stream::stream, admin::me, admin::create_collection,
        admin::list_collections, admin::get_collection, admin::update_collection,
        admin::delete_collection, admin::create_key, admin::list_keys, admin::revoke_key,
        admin::audit, captures::list_captures, captures::get_capture, captures::capture_image,
        captures::delete_capture, captures::assign_captures, captures::reject_capture,
        captures::search_captures, captures::list_clusters, captures::get_cluster,
        captures::delete_cluster, captures::name_cluster, webhooks::create_webhook,
        webhooks::list_webhooks, webhooks::get_webhook, webhooks::delete_webhook,
        webhooks::list_deliveries
    ),
    servers((url = "/", description = "The server that serves this document")),
    modifiers(&SecuritySchemes),
    tags((name = "registration"), (name = "recognition"), (name = "persons"), (name = "stream"), (name = "collections"), (name = "captures"), (name = "events"), (name = "operations"))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        enumerate_codes_and_scopes(components);
        add_examples(components);
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The operations that write to the database (persons, faces, stream tickets).
            let stores = path == "/v1/register"
                || path == "/v1/stream/ticket"
                || path.starts_with("/v1/collections")
                || path.starts_with("/v1/keys")
                || path.starts_with("/v1/persons/")
                || path.starts_with("/v1/faces/")
                || path.starts_with("/v1/captures")
                || path.starts_with("/v1/clusters")
                || path.starts_with("/v1/webhooks");
            // The operations that register a face, and those that write a person's fields.
            let registers = path == "/v1/register" || path == "/v1/persons/{id}/faces";
            let updates_person = path == "/v1/persons/{id}";
            for (operation, kind) in [
                (&mut item.get, Kind::default()),
                (&mut item.post, Kind::writing(stores, registers, registers)),
                (&mut item.put, Kind::writing(stores, false, false)),
                (
                    &mut item.patch,
                    Kind::writing(stores, false, updates_person),
                ),
                (&mut item.delete, Kind::writing(stores, false, false)),
            ] {
                if let Some(operation) = operation {
                    document_refusals(path, operation, kind);
                }
            }
            // The scope each operation needs, from the route table.
            for route in super::routes::keyed_routes()
                .iter()
                .filter(|r| r.path == path)
            {
                let operation = match route.method.as_str() {
                    "GET" => item.get.as_mut(),
                    "POST" => item.post.as_mut(),
                    "PUT" => item.put.as_mut(),
                    "PATCH" => item.patch.as_mut(),
                    "DELETE" => item.delete.as_mut(),
                    _ => None,
                };
                if let Some(operation) = operation {
                    let needs = format!("Needs a key with the scope `{}`.", route.scope);
                    operation.description = Some(match operation.description.take() {
                        Some(d) => format!("{d}\n\n{needs}"),
                        None => needs,
                    });
                }
            }
        }
    }
}

/// What an operation does, as far as its refusals go.
#[derive(Debug, Clone, Copy, Default)]
struct Kind {
    writes: bool,
    registers: bool,
    person_fields: bool,
}

impl Kind {
    fn writing(writes: bool, registers: bool, person_fields: bool) -> Self {
        Self {
            writes,
            registers,
            person_fields,
        }
    }
}

/// What any operation can answer besides its own results, written once instead of on every
/// handler and derived from the code table: the access guard, malformed requests, timeouts and the
/// database everywhere; on keyed routes both ways of sending a key and the key's refusals; what an
/// upload, a write, a registration or an id in the path can be refused for.
fn document_refusals(path: &str, operation: &mut utoipa::openapi::path::Operation, kind: Kind) {
    use facerec_core::error_code::Documented;
    use utoipa::openapi::security::SecurityRequirement;
    let keyed = path.starts_with("/v1/");
    let applies = |documented: Documented| match documented {
        Documented::Always => true,
        Documented::Keyed => keyed,
        Documented::Writes => kind.writes,
        Documented::Registers => kind.registers,
        Documented::PersonFields => kind.person_fields,
        Documented::ById => path.contains('{'),
        Documented::WithBody => operation.request_body.is_some(),
        Documented::Own => false,
    };
    let mut refusals: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for code in facerec_core::ErrorCode::ALL {
        if applies(code.documented()) {
            refusals
                .entry(code.status())
                .or_default()
                .push(format!("{code}: {}", code.description()));
        }
    }
    if keyed {
        operation.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("api_key_header", Vec::<String>::new()),
        ]);
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(collection_header());
    }
    for (status, codes) in refusals {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(status, &codes.join("; ")));
    }
    // Every answer carries the request's id, as the server's log names it.
    for response in operation.responses.responses.values_mut() {
        if let utoipa::openapi::RefOr::T(response) = response {
            response
                .headers
                .entry("x-request-id".into())
                .or_insert_with(request_id);
        }
    }
    // The handlers' own 429 and 503 answers say when to retry as well.
    for status in ["429", "503"] {
        if let Some(utoipa::openapi::RefOr::T(response)) =
            operation.responses.responses.get_mut(status)
        {
            response
                .headers
                .entry("Retry-After".into())
                .or_insert_with(retry_after);
        }
    }
}

fn request_id() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(text_schema())
        .description(Some(
            "The request's id (the client's own `x-request-id` when it sent one): the server's \
             log names the request by it.",
        ))
        .build()
}

fn retry_after() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(text_schema())
        .description(Some("Seconds to wait before asking again."))
        .build()
}

/// Error codes and scopes as the enums they are, from their tables (`ErrorCode::ALL`,
/// `Scope::ALL`), so that a generated client can match on them.
fn enumerate_codes_and_scopes(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;
    let codes = facerec_core::ErrorCode::ALL.iter().map(|c| c.to_string());
    let scopes = || facerec_core::Scope::ALL.iter().map(|s| s.as_str());
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        if name == "ErrorDetail" {
            let code = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes.clone()))
                .description(Some(
                    "Stable, machine-readable: clients branch on this (docs/API.md, the error table).",
                ));
            object.properties.insert("code".into(), code.into());
        }
        if object.properties.contains_key("scopes") {
            let scope = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(scopes()));
            let list = ArrayBuilder::new().items(scope).description(Some(
                "Scopes: what the key may do (docs/COLLECTIONS-AND-KEYS.md, the scope table).",
            ));
            object.properties.insert("scopes".into(), list.into());
        }
    }
}

/// An example of every request and response body, from `examples.json`: what a real run of this
/// version answered (ids and times differ on each run; long lists cut to two items), and for the
/// forms, the fields a client sends. The contract test validates each against its schema.
const EXAMPLES: &str = include_str!("examples.json");

fn add_examples(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    let examples: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(EXAMPLES).expect("examples.json is a JSON object");
    for (name, schema) in components.schemas.iter_mut() {
        let Some(example) = examples.get(name) else {
            continue;
        };
        match schema {
            RefOr::T(Schema::Object(object)) => object.examples = vec![example.clone()],
            // A body that flattens another (`CreatedKeyDto` is a `KeyDto` and its secret).
            RefOr::T(Schema::AllOf(all_of)) => all_of.examples = vec![example.clone()],
            _ => {}
        }
    }
}

fn text_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new().schema_type(Type::String).build()
}

/// `X-Facerec-Collection` (`auth::COLLECTION_HEADER`), which every keyed operation reads.
fn collection_header() -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::Required;
    ParameterBuilder::new()
        .name("X-Facerec-Collection")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The collection to act in, by name or id, for an operator key or an `admin` key \
             (default: `default`); any other key acts in its own, and naming another is 404 \
             `collection_not_found`.",
        ))
        .schema(Some(text_schema()))
        .build()
}

/// A refusal's answer: the error body; 429 and 503 say when to retry (`Retry-After`, seconds).
fn error_response(
    status: u16,
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if status == 429 || status == 503 {
        response = response.header("Retry-After", retry_after());
    }
    response.build().into()
}
