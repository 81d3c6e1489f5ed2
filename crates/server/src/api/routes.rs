//! The route table: every route that needs a key, with the one scope it needs and how its key
//! comes. The router is built from it (`router.rs`), and so is the OpenAPI document's scope of each
//! operation (`openapi.rs`).

use std::sync::Arc;

use axum::http::Method;
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use facerec_core::Scope;

use super::state::AppState;
use super::{admin, captures, compat, handlers, stream, webhooks};

/// How a keyed route's caller proves who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A key in a header (or none, on a loopback server without keys), checked before the
    /// handler runs.
    Header,
    /// DeepStack's: a header, or the form's `api_key` field (checked once the form is read).
    HeaderOrForm,
    /// The stream's: a header, or a one-time ticket in the query.
    HeaderOrTicket,
}

/// One row of the route table: a method and path, the scope it needs, how the key comes, the
/// handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub scope: Scope,
    pub credential: Credential,
    pub(super) handler: MethodRouter<Arc<AppState>>,
}

/// Every route that needs a key, with the one scope it needs: `/v1`, CompreFace's and
/// DeepStack's. A route is added here or not at all (`routes` builds the router from this), so
/// none can exist without a scope. One row per line, as a table reads.
#[rustfmt::skip]
pub fn keyed_routes() -> Vec<Route> {
    use compat::compreface as cf;
    use compat::deepstack as ds;
    use Credential::*;
    use Scope::*;
    let row = |method: Method, path, scope, credential, handler| Route {
        method,
        path,
        scope,
        credential,
        handler,
    };
    // Constants, so each row takes its own copy.
    const GET: Method = Method::GET;
    const POST: Method = Method::POST;
    const PUT: Method = Method::PUT;
    const PATCH: Method = Method::PATCH;
    const DELETE: Method = Method::DELETE;
    vec![
        // facerec's own API.
        row(POST,   "/v1/register",                                           Enroll,     Header,         post(handlers::register)),
        row(POST,   "/v1/recognize",                                          Recognize,  Header,         post(handlers::recognize)),
        row(POST,   "/v1/verify",                                             Recognize,  Header,         post(handlers::verify)),
        row(POST,   "/v1/detect",                                             Recognize,  Header,         post(handlers::detect)),
        row(GET,    "/v1/calibration",                                        Manage,     Header,         get(handlers::calibration)),
        row(POST,   "/v1/calibration",                                        Manage,     Header,         post(handlers::recalibrate)),
        row(GET,    "/v1/persons",                                            Manage,     Header,         get(handlers::list_persons)),
        row(GET,    "/v1/persons/{id}",                                       Manage,     Header,         get(handlers::get_person)),
        row(PATCH,  "/v1/persons/{id}",                                       Manage,     Header,         patch(handlers::update_person)),
        row(DELETE, "/v1/persons/{id}",                                       Manage,     Header,         delete(handlers::delete_person)),
        row(GET,    "/v1/persons/{id}/export",                                Manage,     Header,         get(handlers::export_person)),
        row(GET,    "/v1/persons/{id}/faces",                                 Manage,     Header,         get(handlers::list_faces)),
        row(POST,   "/v1/persons/{id}/faces",                                 Enroll,     Header,         post(handlers::add_face)),
        row(DELETE, "/v1/faces/{id}",                                         Manage,     Header,         delete(handlers::delete_face)),
        row(GET,    "/v1/audit",                                              Manage,     Header,         get(admin::audit)),
        row(GET,    "/v1/captures",                                           Manage,     Header,         get(captures::list_captures)),
        row(POST,   "/v1/captures/assign",                                    Manage,     Header,         post(captures::assign_captures)),
        row(POST,   "/v1/captures/search",                                    Manage,     Header,         post(captures::search_captures)),
        row(GET,    "/v1/captures/{id}",                                      Manage,     Header,         get(captures::get_capture)),
        row(DELETE, "/v1/captures/{id}",                                      Manage,     Header,         delete(captures::delete_capture)),
        row(GET,    "/v1/captures/{id}/image",                                Manage,     Header,         get(captures::capture_image)),
        row(POST,   "/v1/captures/{id}/reject",                               Manage,     Header,         post(captures::reject_capture)),
        row(GET,    "/v1/clusters",                                           Manage,     Header,         get(captures::list_clusters)),
        row(GET,    "/v1/clusters/{id}",                                      Manage,     Header,         get(captures::get_cluster)),
        row(DELETE, "/v1/clusters/{id}",                                      Manage,     Header,         delete(captures::delete_cluster)),
        row(POST,   "/v1/clusters/{id}/name",                                 Manage,     Header,         post(captures::name_cluster)),
        row(POST,   "/v1/stream/ticket",                                      Recognize,  Header,         post(stream::ticket)),
        row(GET,    "/v1/stream",                                             Recognize,  HeaderOrTicket, get(stream::stream)),
        row(GET,    "/v1/me",                                                 Recognize,  Header,         get(admin::me)),
        row(POST,   "/v1/collections",                                        Admin,      Header,         post(admin::create_collection)),
        row(GET,    "/v1/collections",                                        Admin,      Header,         get(admin::list_collections)),
        row(GET,    "/v1/collections/{id}",                                   Admin,      Header,         get(admin::get_collection)),
        row(PATCH,  "/v1/collections/{id}",                                   Admin,      Header,         patch(admin::update_collection)),
        row(DELETE, "/v1/collections/{id}",                                   Admin,      Header,         delete(admin::delete_collection)),
        row(POST,   "/v1/keys",                                               Admin,      Header,         post(admin::create_key)),
        row(GET,    "/v1/keys",                                               Admin,      Header,         get(admin::list_keys)),
        row(DELETE, "/v1/keys/{id}",                                          Admin,      Header,         delete(admin::revoke_key)),
        row(POST,   "/v1/webhooks",                                           Admin,      Header,         post(webhooks::create_webhook)),
        row(GET,    "/v1/webhooks",                                           Admin,      Header,         get(webhooks::list_webhooks)),
        row(GET,    "/v1/webhooks/{id}",                                      Admin,      Header,         get(webhooks::get_webhook)),
        row(DELETE, "/v1/webhooks/{id}",                                      Admin,      Header,         delete(webhooks::delete_webhook)),
        row(GET,    "/v1/webhooks/{id}/deliveries",                           Admin,      Header,         get(webhooks::list_deliveries)),
        // CompreFace's: a key is its collection, as a CompreFace recognition service is.
        row(GET,    "/api/v1/recognition/subjects",                           Manage,     Header,         get(cf::list_subjects)),
        row(GET,    "/api/v1/recognition/subjects/",                          Manage,     Header,         get(cf::list_subjects)),
        row(POST,   "/api/v1/recognition/subjects",                           Enroll,     Header,         post(cf::add_subject)),
        row(DELETE, "/api/v1/recognition/subjects",                           Manage,     Header,         delete(cf::delete_all_subjects)),
        row(PUT,    "/api/v1/recognition/subjects/{subject}",                 Manage,     Header,         put(cf::rename_subject)),
        row(DELETE, "/api/v1/recognition/subjects/{subject}",                 Manage,     Header,         delete(cf::delete_subject)),
        row(GET,    "/api/v1/recognition/faces",                              Manage,     Header,         get(cf::list_faces)),
        row(POST,   "/api/v1/recognition/faces",                              Enroll,     Header,         post(cf::add_face)),
        row(DELETE, "/api/v1/recognition/faces",                              Manage,     Header,         delete(cf::delete_faces)),
        row(POST,   "/api/v1/recognition/faces/delete",                       Manage,     Header,         post(cf::delete_face_list)),
        row(DELETE, "/api/v1/recognition/faces/{image_id}",                   Manage,     Header,         delete(cf::delete_face)),
        row(POST,   "/api/v1/recognition/faces/{image_id}/verify",            Recognize,  Header,         post(cf::verify_with_face)),
        row(POST,   "/api/v1/recognition/recognize",                          Recognize,  Header,         post(cf::recognize)),
        row(POST,   "/api/v1/recognition/embeddings/recognize",               Embeddings, Header,         post(cf::recognize_embeddings)),
        row(POST,   "/api/v1/recognition/embeddings/faces/{image_id}/verify", Embeddings, Header,         post(cf::verify_embeddings_with_face)),
        row(POST,   "/api/v1/detection/detect",                               Recognize,  Header,         post(cf::detect)),
        row(POST,   "/api/v1/verification/verify",                            Recognize,  Header,         post(cf::verify)),
        row(POST,   "/api/v1/verification/embeddings/verify",                 Embeddings, Header,         post(cf::verify_embeddings)),
        // DeepStack's: its clients may send the key in the form.
        row(POST,   "/v1/vision/face",                                        Recognize,  HeaderOrForm,   post(ds::detect)),
        row(POST,   "/v1/vision/face/",                                       Recognize,  HeaderOrForm,   post(ds::detect)),
        row(POST,   "/v1/vision/face/recognize",                              Recognize,  HeaderOrForm,   post(ds::recognize)),
        row(POST,   "/v1/vision/face/register",                               Enroll,     HeaderOrForm,   post(ds::register)),
        row(POST,   "/v1/vision/face/list",                                   Manage,     HeaderOrForm,   post(ds::list)),
        row(POST,   "/v1/vision/face/delete",                                 Manage,     HeaderOrForm,   post(ds::delete)),
        row(POST,   "/v1/vision/face/match",                                  Recognize,  HeaderOrForm,   post(ds::match_faces)),
    ]
}
