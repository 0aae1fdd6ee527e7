//! The OpenAPI 3.1 document of every JSON API, written out rather than derived: it is the
//! contract with integrators, reviewed as such, and a test checks that every API route is
//! in it. (Deriving it would need proc macros across crates for little gain.)

use serde_json::{Value, json};

fn problem_responses(extra: &[(&str, &str)]) -> Value {
    let mut r = serde_json::Map::new();
    for (code, text) in extra {
        r.insert((*code).into(), json!({
            "description": text,
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
        }));
    }
    Value::Object(r)
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn query(name: &str, description: &str, schema: Value, required: bool) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description, "schema": schema })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The OAuth2 / OpenID Connect endpoints that speak JSON, and the admin API for clients.
fn oidc_paths() -> Value {
    let oauth_error = json!({ "type": "object", "required": ["error"], "properties": { "error": {"type": "string"}, "error_description": {"type": "string"} } });
    let client_auth = json!({
        "client_id": { "type": "string" }, "client_secret": { "type": "string", "description": "client_secret_post (or send HTTP Basic: client_secret_basic)" },
        "client_assertion_type": { "const": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" },
        "client_assertion": { "type": "string", "description": "private_key_jwt: a JWT (iss = sub = client_id, aud = this endpoint's URL or the issuer, exp, unique jti) signed with a registered key" } });
    let form = |required: Value, props: Value| json!({ "required": true, "content": { "application/x-www-form-urlencoded": { "schema": { "type": "object", "required": required, "properties": merge(props, client_auth.clone()) } } } });
    let errors = json!({
        "400": ok("RFC 6749 § 5.2 error (invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope)", oauth_error.clone()),
        "401": ok("invalid_client (with WWW-Authenticate)", oauth_error.clone()),
        "429": ok("Too many requests from this address (Retry-After)", oauth_error.clone()) });
    let admin = json!([{ "adminToken": [] }]);
    let admin_errors = problem_responses(&[
        ("400", "Invalid input: the problem says what to fix"),
        ("401", "Missing or wrong admin token"),
        ("404", "No such client"),
    ]);
    json!({
        "/.well-known/openid-configuration": { "get": {
            "tags": ["OpenID Connect"], "operationId": "openidConfiguration",
            "summary": "OpenID Provider metadata (OIDC Discovery 1.0); the issuer is the public base URL",
            "responses": { "200": ok("Provider metadata", json!({ "type": "object", "required": ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"] })) } } },
        "/oidc/jwks": { "get": {
            "tags": ["OpenID Connect"], "operationId": "oidcJwks",
            "summary": "The provider's signing keys (ES256, RS256): current ones and, after a rotation, the previous ones until their overlap ends. Not the FIT-Connect key set at /.well-known/jwks.json",
            "responses": { "200": { "description": "JWK set", "content": { "application/jwk-set+json": { "schema": { "type": "object", "required": ["keys"] } } } } } } },
        "/oauth/token": { "post": {
            "tags": ["OAuth"], "operationId": "token",
            "summary": "Token endpoint: authorization_code (PKCE S256 required), refresh_token (rotated on every use; reuse revokes the sign-in's tokens), client_credentials (API clients; without scope: all registered scopes)",
            "requestBody": form(json!(["grant_type"]), json!({
                "grant_type": { "enum": ["authorization_code", "refresh_token", "client_credentials"] },
                "code": { "type": "string" }, "redirect_uri": { "type": "string" }, "code_verifier": { "type": "string", "minLength": 43, "maxLength": 128 },
                "refresh_token": { "type": "string" }, "scope": { "type": "string" } })),
            "responses": merge(json!({
                "200": ok("Tokens (access token 10 minutes; no-store)", json!({ "type": "object", "required": ["access_token", "token_type", "expires_in"], "properties": {
                    "access_token": {"type": "string"}, "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"}, "scope": {"type": "string"},
                    "id_token": {"type": "string", "description": "Code and refresh grants: JWT with iss, sub, aud, exp, iat, auth_time, nonce, acr (STORK-QAA-Level-1…4), amr, sid, at_hash"},
                    "refresh_token": {"type": "string"} } })) }), errors.clone()) } },
        "/oauth/introspect": { "post": {
            "tags": ["OAuth"], "operationId": "introspect",
            "summary": "Token introspection (RFC 7662): a client sees its own tokens; a client with scope introspect (a resource server) any",
            "requestBody": form(json!(["token"]), json!({ "token": {"type": "string"}, "token_type_hint": {"enum": ["access_token", "refresh_token"]} })),
            "responses": merge(json!({ "200": ok("active, and for active tokens: client_id, scope, sub, exp, iat, iss, sid, acr", json!({ "type": "object", "required": ["active"] })) }), errors.clone()) } },
        "/oauth/revoke": { "post": {
            "tags": ["OAuth"], "operationId": "revoke",
            "summary": "Token revocation (RFC 7009) of the client's own access or refresh token (a refresh token takes its whole sign-in with it); 200 also for unknown tokens",
            "requestBody": form(json!(["token"]), json!({ "token": {"type": "string"}, "token_type_hint": {"enum": ["access_token", "refresh_token"]} })),
            "responses": merge(json!({ "200": { "description": "Revoked (or unknown)" } }), errors) } },
        "/oidc/userinfo": {
            "get": { "tags": ["OpenID Connect"], "operationId": "userinfo", "security": [{ "userAccessToken": [] }],
                "summary": "The claims the user agreed to release (scopes profile, email, address, phone, trust_level, organisation); every call is recorded in the account's activity",
                "responses": { "200": ok("Claims", json!({ "type": "object", "required": ["sub"] })), "401": ok("invalid_token (WWW-Authenticate: Bearer)", oauth_error.clone()) } },
            "post": { "tags": ["OpenID Connect"], "operationId": "userinfoPost", "security": [{ "userAccessToken": [] }],
                "summary": "As GET; the token may also come as access_token in a form body (RFC 6750 § 2.2)",
                "responses": { "200": ok("Claims", json!({ "type": "object", "required": ["sub"] })), "401": ok("invalid_token", oauth_error) } } },
        "/api/admin/v1/clients": {
            "get": { "tags": ["Admin"], "operationId": "listClients", "security": admin, "summary": "Registered OAuth2 / OpenID clients (without secrets)",
                "responses": merge(json!({ "200": ok("Clients", json!({ "type": "object", "properties": { "clients": { "type": "array" } } })) }), admin_errors.clone()) },
            "post": { "tags": ["Admin"], "operationId": "createClient", "security": admin,
                "summary": "Register a client; the answer holds the secret, shown only this once",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "maxLength": 200}, "kind": {"enum": ["web", "api"], "default": "api"}, "authority": {"type": "string", "description": "ARS the client acts for"},
                    "scopes": {"type": "array", "items": {"type": "string"}, "description": "API clients: scopes they may request"},
                    "redirect_uris": {"type": "array", "items": {"type": "string"}}, "post_logout_redirect_uris": {"type": "array", "items": {"type": "string"}},
                    "id_token_alg": {"enum": ["ES256", "RS256"]}, "subject_type": {"enum": ["public", "pairwise"]}, "sector_identifier": {"type": "string"},
                    "jwks": {"type": "object", "description": "Public keys for private_key_jwt"}, "frontchannel_logout_uri": {"type": "string"}, "backchannel_logout_uri": {"type": "string"},
                    "destinations": {"type": "array", "items": {"type": "string"}} } } } } },
                "responses": merge(json!({ "201": ok("Registered", json!({ "type": "object", "properties": { "client_id": {"type": "string"}, "client_secret": {"type": "string"} } })) }), admin_errors.clone()) } },
        "/api/admin/v1/clients/{id}/active": { "put": { "tags": ["Admin"], "operationId": "setClientActive", "security": admin,
            "summary": "Disable (tokens stop working) or enable a client", "parameters": [path_param("id", "Client id")],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["active"], "properties": { "active": {"type": "boolean"} } } } } },
            "responses": merge(json!({ "204": { "description": "Done" } }), admin_errors.clone()) } },
        "/api/admin/v1/clients/{id}/secret": { "post": { "tags": ["Admin"], "operationId": "rotateClientSecret", "security": admin,
            "summary": "A new secret for the client; the old one stops working at once", "parameters": [path_param("id", "Client id")],
            "responses": merge(json!({ "200": ok("New secret", json!({ "type": "object", "properties": { "client_id": {"type": "string"}, "client_secret": {"type": "string"} } })) }), admin_errors.clone()) } },
        "/api/admin/v1/oidc/keys/rotate": { "post": { "tags": ["Admin"], "operationId": "rotateOidcKeys", "security": admin,
            "summary": "New ES256 and RS256 signing keys; the old ones stay in the JWKS for overlap_hours (default 24); other nodes switch within 30 s",
            "parameters": [query("overlap_hours", "Hours the old keys stay published (0–2160)", json!({"type": "integer"}), false)],
            "responses": merge(json!({ "200": ok("New key ids", json!({ "type": "object" })) }), admin_errors) } },
    })
}

/// The Postfach API.
fn postfach_paths() -> Value {
    let bearer = json!([{ "clientCredentials": ["postfach:deliver"] }]);
    let errors = problem_responses(&[
        ("400", "Invalid input: the problem names the field"),
        ("401", "Missing or expired access token"),
        ("403", "The token lacks the scope postfach:deliver"),
        ("404", "No such message sent by this client"),
    ]);
    let message = json!({ "type": "object", "additionalProperties": false, "required": ["recipient", "subject", "body"], "properties": {
        "recipient": { "type": "string", "pattern": "^[-._a-z0-9~/]*$", "maxLength": 150, "description": "Postfach reference (FIT-Connect fink finkPostfachRef), never an e-mail address" },
        "subject": { "type": "string", "maxLength": 250 },
        "body": { "type": "string", "maxLength": 100000, "description": "Plain text; blank lines separate paragraphs" },
        "minTrustLevel": { "description": "Minimum trust level to read it: 1–4 or STORK-QAA-Level-1 … -4 or an eIDAS LoA URI (default 1)", "oneOf": [{ "type": "integer", "minimum": 1, "maximum": 4 }, { "type": "string" }] },
        "replyAllowed": { "type": "boolean", "default": false } } });
    let attachment = json!({ "type": "object", "properties": { "position": {"type": "integer"}, "filename": {"type": "string"}, "mediaType": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"} } });
    let reply = json!({ "type": "object", "properties": { "id": {"type": "string"}, "inReplyTo": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}, "placedAt": {"type": "string", "format": "date-time"}, "attachmentCount": {"type": "integer"} } });
    json!({
        "/api/postfach/v1/messages": { "post": {
            "tags": ["Postfach"], "operationId": "deliverMessage", "security": bearer,
            "summary": "Deliver a message into a Postfach (OZG § 9: placed now; the citizen is notified by e-mail)",
            "requestBody": { "required": true, "content": {
                "application/json": { "schema": message },
                "multipart/form-data": { "schema": { "type": "object", "required": ["message"], "properties": {
                    "message": message,
                    "attachment": { "type": "array", "maxItems": 20, "items": { "type": "string", "contentMediaType": "application/octet-stream" }, "description": "Files (default at most 20 of 20 MB each), streamed to storage" } } },
                    "encoding": { "message": { "contentType": "application/json" } } } } },
            "responses": merge(json!({
                "201": ok("Placed; Location names the message", json!({ "type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "recipient": {"type": "string"}, "placedAt": {"type": "string", "format": "date-time"},
                    "deemedDeliveryDate": {"type": "string", "format": "date"}, "minTrustLevel": {"type": "integer"}, "replyAllowed": {"type": "boolean"},
                    "attachments": { "type": "array", "items": attachment } } })) }),
                merge(errors.clone(), problem_responses(&[("413", "Too many or too large files"), ("415", "Send JSON or multipart/form-data")])))
        }},
        "/api/postfach/v1/messages/{id}": { "get": {
            "tags": ["Postfach"], "operationId": "messageStatus", "security": bearer,
            "summary": "Delivery facts of a message this client sent: placed, notified, first opened, deemed delivery date, replies, and the delivery steps as the journal records them (each with its leaf index once sequenced: fetch its inclusion proof at /journal/v1/entries/{index}/proof)",
            "parameters": [path_param("id", "Message id")],
            "responses": merge(json!({ "200": ok("Status", json!({ "type": "object", "properties": {
                "id": {"type": "string"}, "recipient": {"type": "string"}, "placedAt": {"type": "string"}, "notifiedAt": {"type": ["string", "null"]},
                "firstOpenedAt": {"type": ["string", "null"]}, "deemedDeliveryDate": {"type": "string", "format": "date"},
                "replies": { "type": "array", "items": reply },
                "contentSalt": {"type": ["string", "null"], "description": "Salt of the content digest the journal's placed entry holds (docs/journal.md shows how to recompute it)"},
                "log": { "type": "array", "items": { "type": "object", "required": ["event", "at", "journalIndex", "leafHash", "entry"], "properties": {
                    "event": {"type": "string", "enum": ["placed", "notified", "opened", "replied"]}, "at": {"type": "string", "format": "date-time"},
                    "journalIndex": {"type": ["integer", "null"], "description": "Leaf index in the journal; null for the seconds until the sequencer has taken the entry"},
                    "leafHash": {"type": "string", "description": "Hex SHA-256 of 0x00 followed by the entry's bytes (RFC 9162)"},
                    "entry": {"type": "string", "description": "The journal entry's canonical JSON"} } } } } })) }), errors.clone())
        }},
        "/api/postfach/v1/messages/{id}/attachments/{position}": { "get": {
            "tags": ["Postfach"], "operationId": "messageAttachment", "security": bearer,
            "summary": "An attachment of a message this client sent, or of a reply to one",
            "parameters": [path_param("id", "Message id"), path_param("position", "0-based position")],
            "responses": merge(json!({ "200": { "description": "The file (Content-Disposition: attachment; X-Content-Sha256)", "content": { "application/octet-stream": {} } } }), errors.clone())
        }},
        "/api/postfach/v1/replies": { "get": {
            "tags": ["Postfach"], "operationId": "replies", "security": bearer,
            "summary": "Citizens' replies to this client's messages (the Rückkanal), oldest first, 100 per page",
            "parameters": [query("since", "`next` of the previous page (a placedAt)", json!({"type": "string"}), false)],
            "responses": merge(json!({ "200": ok("Replies", json!({ "type": "object", "properties": { "replies": { "type": "array", "items": reply }, "next": {"type": ["string", "null"]} } })) }), errors)
        }}
    })
}

fn base_document(base_url: &str) -> Value {
    let admin = json!([{ "adminToken": [] }]);
    let bad = problem_responses(&[(
        "400",
        "Invalid parameter: the problem names it and says how to fix it",
    )]);
    let admin_errors = problem_responses(&[
        ("400", "Invalid input: the problem names the field"),
        ("401", "Missing or wrong admin token"),
        ("409", "Conflicts with existing data"),
        ("503", "Admin API disabled: set RATHAUS_ADMIN_TOKEN"),
    ]);
    let paging = [
        query(
            "offset",
            "Start of the page (default 0)",
            json!({"type": "integer", "minimum": 0}),
            false,
        ),
        query(
            "limit",
            "Page size (default 100, at most 500)",
            json!({"type": "integer", "minimum": 1, "maximum": 500}),
            false,
        ),
    ];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Rathaus",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Rathaus JSON APIs: the FIT-Connect-compatible Routing API (Zuständigkeitsfinder), public directory lookups, the admin API, the OAuth2 token endpoint and the Postfach API for authorities. Errors are RFC 7807 problem details (the token endpoint answers RFC 6749 errors).",
            "license": { "name": "EUPL-1.2" }
        },
        "servers": [{ "url": base_url }],
        "paths": {
            "/routing-api/v1/routes": { "get": {
                "tags": ["Routing"], "operationId": "route",
                "summary": "Responsible authorities (destinations) for a service in an area",
                "description": "Compatible with FIT-Connect Routing API 2.0. Exactly one of ars, ags, areaId. A place (12- or 9-digit ARS) usually has one route; a coarse area one per responsible authority inside it.",
                "parameters": [
                    query("leikaKey", "Leistungsschlüssel (14 digits, starting 99)", json!({"type": "string", "pattern": "^99\\d{12}$"}), true),
                    query("ars", "Amtlicher Regionalschlüssel (2, 3, 5, 9 or 12 digits)", json!({"type": "string", "pattern": "^(\\d{2}|\\d{3}|\\d{5}|\\d{9}|\\d{12})$"}), false),
                    query("ags", "Amtlicher Gemeindeschlüssel (2, 3, 5 or 8 digits)", json!({"type": "string", "pattern": "^(\\d{2}|\\d{3}|\\d{5}|\\d{8})$"}), false),
                    query("areaId", "Area id as returned by /areas", json!({"type": "string", "pattern": "^\\d{1,12}$"}), false),
                    paging[0], paging[1]
                ],
                "responses": merge(json!({ "200": ok("Routes (possibly none)", r("RouteResult")) }),
                    merge(bad.clone(), problem_responses(&[("429", "Rate limit exceeded; see the RateLimit-* headers")])))
            }},
            "/routing-api/v1/areas": { "get": {
                "tags": ["Routing"], "operationId": "area",
                "summary": "Areas by name or postcode",
                "parameters": [
                    json!({ "name": "areaSearchexpression", "in": "query", "required": true, "style": "form", "explode": true,
                        "description": "Search terms (1–10); * is a wildcard at either end, e.g. Nenn*",
                        "schema": { "type": "array", "minItems": 1, "maxItems": 10, "items": { "type": "string" } } }),
                    paging[0], paging[1]
                ],
                "responses": merge(json!({ "200": ok("Matching areas", r("AreaResult")) }), bad.clone())
            }},
            "/routing-api/v1/info": { "get": {
                "tags": ["Routing"], "operationId": "info", "summary": "Implemented Routing API version",
                "responses": { "200": ok("Version", json!({"type": "object"})) }
            }},
            "/.well-known/jwks.json": { "get": {
                "tags": ["Routing"], "operationId": "jwks",
                "summary": "Public keys (RSA-4096, PS512, with x5c) that verify destinationSignature",
                "responses": { "200": { "description": "JWK set", "content": { "application/jwk-set+json": { "schema": r("Jwks") } } } }
            }},
            "/api/v1/services": { "get": {
                "tags": ["Directory"], "operationId": "searchServices", "summary": "Search the service catalogue",
                "parameters": [ query("q", "Words of the service name, or a key", json!({"type": "string", "maxLength": 200}), false),
                    query("limit", "At most this many (default 20, at most 500)", json!({"type": "integer", "minimum": 1, "maximum": 500}), false) ],
                "responses": merge(json!({ "200": ok("Services", json!({"type": "object", "properties": {"services": {"type": "array", "items": r("Service")}}})) }), bad.clone())
            }},
            "/api/v1/places": { "get": {
                "tags": ["Directory"], "operationId": "searchPlaces", "summary": "Search places (municipalities) by name or postcode",
                "parameters": [ query("q", "Name or postcode", json!({"type": "string", "maxLength": 200}), true),
                    query("limit", "At most this many (default 20, at most 500)", json!({"type": "integer", "minimum": 1, "maximum": 500}), false) ],
                "responses": merge(json!({ "200": ok("Places", json!({"type": "object", "properties": {"places": {"type": "array", "items": r("Place")}}})) }), bad.clone())
            }},
            "/api/v1/authorities/{ars}": { "get": {
                "tags": ["Directory"], "operationId": "getAuthority", "summary": "One authority with its contact details",
                "parameters": [ path_param("ars", "ARS of the authority") ],
                "responses": merge(json!({ "200": ok("The authority", r("Authority")) }), problem_responses(&[("400", "Not an ARS"), ("404", "No such authority")]))
            }},
            "/api/admin/v1/rules": {
                "get": {
                    "tags": ["Admin"], "operationId": "listRules", "security": admin, "summary": "Responsibility rules",
                    "parameters": [ query("service", "Only this Leistungsschlüssel", json!({"type": "string"}), false),
                        query("area", "Only rules whose area starts with this ARS", json!({"type": "string"}), false), paging[0], paging[1] ],
                    "responses": merge(json!({ "200": ok("Rules", r("RuleList")) }), admin_errors.clone())
                },
                "post": {
                    "tags": ["Admin"], "operationId": "createRules", "security": admin,
                    "summary": "Create one rule or a batch (all or nothing)",
                    "parameters": [ query("replace", "Replace existing rules for the same service and area", json!({"type": "boolean"}), false) ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "oneOf": [ r("RuleInput"), { "type": "array", "items": r("RuleInput"), "maxItems": 500000 } ] } } } },
                    "responses": merge(json!({ "201": ok("Created rules", json!({"type": "object", "properties": {"rules": {"type": "array", "items": r("Rule")}}})) }), admin_errors.clone())
                }
            },
            "/api/admin/v1/rules/{id}": { "delete": {
                "tags": ["Admin"], "operationId": "deleteRule", "security": admin, "summary": "Delete a rule",
                "parameters": [ path_param("id", "Rule id (UUID)") ],
                "responses": merge(json!({ "204": { "description": "Deleted" } }), merge(admin_errors.clone(), problem_responses(&[("404", "No such rule")])))
            }},
            "/api/admin/v1/authorities/{ars}": { "get": {
                "tags": ["Admin"], "operationId": "adminGetAuthority", "security": admin, "summary": "An authority with its change history",
                "parameters": [ path_param("ars", "ARS") ],
                "responses": merge(json!({ "200": ok("Authority and history", json!({"type": "object"})) }), admin_errors.clone())
            }},
            "/api/admin/v1/authorities/{ars}/details": { "put": {
                "tags": ["Admin"], "operationId": "putAuthorityDetails", "security": admin,
                "summary": "Replace addresses, contacts, opening hours and links",
                "parameters": [ path_param("ars", "ARS") ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": r("AuthorityDetails") } } },
                "responses": merge(json!({ "204": { "description": "Saved" } }), admin_errors.clone())
            }},
            "/api/admin/v1/authorities/{ars}/legal/{kind}/{lang}": { "put": {
                "tags": ["Admin"], "operationId": "putLegalPage", "security": admin,
                "summary": "Set the Impressum, Datenschutzerklärung or Erklärung zur Barrierefreiheit",
                "parameters": [ path_param("ars", "ARS"), path_param("kind", "impressum, datenschutz or barrierefreiheit"), path_param("lang", "de or en") ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["content"], "properties": { "content": { "type": "string", "maxLength": 100000, "description": "Plain text; blank lines separate paragraphs" } } } } } },
                "responses": merge(json!({ "204": { "description": "Saved" } }), admin_errors.clone())
            }},
            "/api/admin/v1/feedback": { "get": {
                "tags": ["Admin"], "operationId": "listFeedback", "security": admin, "summary": "Barrier reports (BITV 2.0 feedback)",
                "parameters": [ query("authority", "Only for this authority (ARS)", json!({"type": "string"}), false), paging[0], paging[1] ],
                "responses": merge(json!({ "200": ok("Reports", json!({"type": "object", "properties": {"feedback": {"type": "array", "items": r("Feedback")}}})) }), admin_errors.clone())
            }},
            "/api/admin/v1/imports/areas": { "post": {
                "tags": ["Admin"], "operationId": "importAreas", "security": admin,
                "summary": "Import a Gemeindeverzeichnis CSV (ebene,ars,name,typ,sitz); idempotent",
                "requestBody": { "required": true, "content": { "text/csv": { "schema": { "type": "string" } } } },
                "responses": merge(json!({ "200": ok("What changed", r("ImportSummary")) }), admin_errors.clone())
            }},
            "/api/admin/v1/mails": { "get": {
                "tags": ["Admin"], "operationId": "listMails", "security": admin,
                "summary": "The mail outbox, newest first: pending (no relay, or retrying), sent, failed; without bodies",
                "parameters": [query("limit", "At most this many (default 100, at most 500)", json!({"type": "integer", "minimum": 1, "maximum": 500}), false)],
                "responses": merge(json!({ "200": ok("Mails", json!({"type": "object", "properties": {"mails": {"type": "array", "items": {"type": "object"}}, "pendingInThisPage": {"type": "integer"}}})) }), admin_errors.clone())
            }},
            "/api/admin/v1/imports/services": { "post": {
                "tags": ["Admin"], "operationId": "importServices", "security": admin,
                "summary": "Import a Leistungskatalog CSV (leistungsschluessel,bezeichnung,typisierung)",
                "requestBody": { "required": true, "content": { "text/csv": { "schema": { "type": "string" } } } },
                "responses": merge(json!({ "200": ok("Counts", json!({"type": "object", "properties": {"inserted": {"type": "integer"}, "updated": {"type": "integer"}}})) }), admin_errors.clone())
            }},
            "/healthz": { "get": { "tags": ["Operations"], "operationId": "healthz", "summary": "Liveness", "responses": { "200": { "description": "Alive" } } } },
            "/readyz": { "get": { "tags": ["Operations"], "operationId": "readyz", "summary": "Readiness: database reachable, migrations applied",
                "responses": merge(json!({ "200": ok("Ready", json!({"type": "object"})) }), problem_responses(&[("503", "Not ready")])) } },
            "/metrics": { "get": { "tags": ["Operations"], "operationId": "metrics", "summary": "Prometheus metrics",
                "responses": { "200": { "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } } } } }
        },
        "components": {
            "securitySchemes": {
                "adminToken": { "type": "http", "scheme": "bearer", "description": "RATHAUS_ADMIN_TOKEN" },
                "clientCredentials": { "type": "oauth2", "flows": { "clientCredentials": { "tokenUrl": format!("{base_url}/oauth/token"), "scopes": { "postfach:deliver": "Deliver messages into Postfächer" } } } },
                "userAccessToken": { "type": "openIdConnect", "openIdConnectUrl": format!("{base_url}/.well-known/openid-configuration") }
            },
            "schemas": schemas()
        }
    })
}

/// The Zustelldienst: FIT-Connect's Submission API v1 (v2 has the same paths under
/// `/submission-api/v2`, with `publicService` for `serviceType` and `publicServices` for
/// `services`). Bodies follow FIT-Connect's OpenAPI document 1.1.3; listed here are the
/// paths, statuses and what we add.
fn submission_paths() -> Value {
    let send = json!([{ "clientCredentials": ["https://schema.fitko.de/fit-connect/oauth/scopes/send-submissions"] }]);
    let subscribe = json!([{ "clientCredentials": ["https://schema.fitko.de/fit-connect/oauth/scopes/subscribe-destinations"] }]);
    let manage = json!([{ "clientCredentials": ["https://schema.fitko.de/fit-connect/oauth/scopes/manage-destinations"] }]);
    let errors = problem_responses(&[
        (
            "400",
            "Invalid request or JWE; `type` is a FIT-Connect problem type under https://schema.fitko.de/fit-connect/submission-api/problems/ and `detail` says what to fix",
        ),
        ("401", "Missing or expired access token"),
        (
            "403",
            "The client lacks the scope or is not linked to the destination (the detail names the command that links it)",
        ),
        (
            "404",
            "Unknown destination, submission, case, attachment or key",
        ),
        (
            "409",
            "The event does not fit the submission's state (e.g. accept after reject)",
        ),
        ("413", "Part larger than the configured limit"),
        (
            "415",
            "Wrong content type (application/jose for JWE and SET bodies)",
        ),
        (
            "422",
            "destination-state-invalid, service-not-offered, submission-state-invalid, attachment-not-announced, missing-attachments, invalid-event, invalid-event-signature",
        ),
    ]);
    let json_body = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object" } } } });
    let jose_body = json!({ "required": true, "content": { "application/jose": { "schema": { "type": "string", "pattern": "^[A-Za-z0-9_\\-.]+$" } } } });
    let obj = json!({ "type": "object" });
    let id = |n: &str| path_param(n, "UUID (any case)");
    let paging = json!([
        query(
            "limit",
            "1 to 500 (default 100)",
            json!({"type": "integer"}),
            false
        ),
        query("offset", "0 or more", json!({"type": "integer"}), false)
    ]);
    let with_paging = |mut params: Vec<Value>| {
        params.extend(paging.as_array().cloned().unwrap_or_default());
        Value::Array(params)
    };
    json!({
        "/submission-api/v1/info": { "get": { "tags": ["Zustelldienst"], "operationId": "zdInfo", "summary": "API version",
            "responses": { "200": ok("Version", obj.clone()) } } },
        "/submission-api/.well-known/jwks.json": { "get": { "tags": ["Zustelldienst"], "operationId": "zdJwks",
            "summary": "The service's PS512 keys that sign its Security Event Tokens (same set as /.well-known/jwks.json)",
            "responses": { "200": { "description": "JWK set", "content": { "application/jwk-set+json": { "schema": obj.clone() } } } } } },
        "/submission-api/v1/destinations": {
            "get": { "tags": ["Zustelldienst"], "operationId": "zdListDestinations", "security": subscribe, "parameters": paging.clone(),
                "summary": "The client's destinations (private view)", "responses": merge(json!({ "200": ok("{count, offset, totalCount, destinations}", obj.clone()) }), errors.clone()) },
            "post": { "tags": ["Zustelldienst"], "operationId": "zdCreateDestination", "security": manage, "requestBody": json_body.clone(),
                "summary": "Register a destination with its public keys (status created; the client is linked to it)",
                "responses": merge(json!({ "201": ok("The destination (private view); Location names it", obj.clone()) }), errors.clone()) } },
        "/submission-api/v1/destinations/{id}": {
            "parameters": [id("id")],
            "get": { "tags": ["Zustelldienst"], "operationId": "zdGetDestination", "summary": "Public view without a token; private view for linked clients",
                "responses": merge(json!({ "200": ok("Destination (Cache-Control: no-cache)", obj.clone()) }), errors.clone()) },
            "put": { "tags": ["Zustelldienst"], "operationId": "zdPutDestination", "security": manage, "requestBody": json_body.clone(),
                "summary": "Replace the destination's writable fields", "responses": merge(json!({ "200": ok("Destination", obj.clone()) }), errors.clone()) },
            "patch": { "tags": ["Zustelldienst"], "operationId": "zdPatchDestination", "security": manage, "requestBody": json_body.clone(),
                "summary": "Change some fields, e.g. {\"status\": \"active\"}", "responses": merge(json!({ "200": ok("Destination", obj.clone()) }), errors.clone()) },
            "delete": { "tags": ["Zustelldienst"], "operationId": "zdDeleteDestination", "security": manage,
                "summary": "Decommission (keys and history stay for older cases)", "responses": merge(json!({ "204": { "description": "Decommissioned" } }), errors.clone()) } },
        "/submission-api/v1/destinations/{id}/keys": {
            "parameters": [id("id")],
            "get": { "tags": ["Zustelldienst"], "operationId": "zdListKeys", "summary": "All keys, the current encryption key first (no token needed)",
                "responses": merge(json!({ "200": ok("{keys: [JWK]}", obj.clone()) }), errors.clone()) },
            "post": { "tags": ["Zustelldienst"], "operationId": "zdAddKey", "security": manage, "requestBody": json_body.clone(),
                "summary": "Add a public key (key_ops [wrapKey] or [verify], RSA ≥ 4096, x5c)", "responses": merge(json!({ "201": { "description": "Added (or already there); Location names it" } }), errors.clone()) } },
        "/submission-api/v1/destinations/{id}/keys/{kid}": {
            "parameters": [id("id"), path_param("kid", "Key id (8 to 64 characters)")],
            "get": { "tags": ["Zustelldienst"], "operationId": "zdGetKey", "summary": "One public key (no token needed)",
                "responses": merge(json!({ "200": ok("JWK", obj.clone()) }), errors.clone()) } },
        "/submission-api/v1/submissions": {
            "get": { "tags": ["Zustelldienst"], "operationId": "zdPickupList", "security": subscribe,
                "parameters": with_paging(vec![query("destinationId", "Only this destination (default: all of the client's)", json!({"type": "string", "format": "uuid"}), false)]),
                "summary": "Submissions waiting for pickup (status submitted), oldest first", "responses": merge(json!({ "200": ok("{count, offset, totalCount, submissions: [{destinationId, submissionId, caseId}]}", obj.clone()) }), errors.clone()) },
            "post": { "tags": ["Zustelldienst"], "operationId": "zdCreateSubmission", "security": send.clone(), "requestBody": json_body.clone(),
                "summary": "Create a submission with announced attachments (repeated ids are merged)",
                "responses": merge(json!({ "201": ok("{destinationId, submissionId, caseId}", obj.clone()) }), errors.clone()) } },
        "/submission-api/v1/submissions/{id}": {
            "parameters": [id("id")],
            "get": { "tags": ["Zustelldienst"], "operationId": "zdGetSubmission", "security": subscribe,
                "summary": "A submission with its encrypted parts (while submitted or forwarded; the first fetch records forward-submission)",
                "responses": merge(json!({ "200": ok("Submission", obj.clone()) }), errors.clone()) },
            "put": { "tags": ["Zustelldienst"], "operationId": "zdSubmit", "security": send.clone(), "requestBody": json_body.clone(),
                "summary": "Submit {encryptedMetadata, encryptedData?} once every announced attachment is uploaded (v1: 202, v2: 200; v2 requires encryptedData)",
                "responses": merge(json!({ "202": ok("SubmissionReduced", obj.clone()) }), errors.clone()) } },
        "/submission-api/v1/submissions/{id}/attachments/{aid}": {
            "parameters": [id("id"), id("aid")],
            "get": { "tags": ["Zustelldienst"], "operationId": "zdGetAttachment", "security": subscribe, "summary": "The attachment's compact JWE",
                "responses": merge(json!({ "200": { "description": "JWE", "content": { "application/jose": { "schema": { "type": "string" } } } } }), errors.clone()) },
            "put": { "tags": ["Zustelldienst"], "operationId": "zdPutAttachment", "security": send, "requestBody": jose_body.clone(),
                "summary": "Upload an announced attachment (compact JWE RSA-OAEP-256/A256GCM; a repeated upload replaces the earlier one)",
                "responses": merge(json!({ "204": { "description": "Stored" } }), errors.clone()) } },
        "/submission-api/v1/submissions/{id}/events": {
            "parameters": [id("id")],
            "get": { "tags": ["Zustelldienst"], "operationId": "zdSubmissionEvents", "summary": "The submission's Security Event Tokens, oldest first",
                "parameters": paging.clone(), "responses": merge(json!({ "200": ok("{count, offset, totalCount, eventLog: [SET]}", obj.clone()) }), errors.clone()) } },
        "/submission-api/v1/cases/{case}/events": {
            "parameters": [id("case")],
            "get": { "tags": ["Zustelldienst"], "operationId": "zdCaseEvents", "summary": "The case's Security Event Tokens (PS512, typ secevent+jwt), oldest first; for the sender and linked subscribers",
                "parameters": paging, "responses": merge(json!({ "200": ok("{count, offset, totalCount, eventLog: [SET]}", obj.clone()) }), errors.clone()) },
            "post": { "tags": ["Zustelldienst"], "operationId": "zdPostEvent", "security": subscribe, "requestBody": jose_body,
                "summary": "A subscriber's accept-submission (with authenticationTags equal to the stored ones) or reject-submission, signed PS512 with the destination's signature key",
                "responses": merge(json!({ "204": { "description": "Recorded" } }), errors) } },
    })
}

pub fn document(base_url: &str) -> Value {
    let mut doc = base_document(base_url);
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), oidc_paths()) {
        paths.extend(more);
    }
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), postfach_paths()) {
        paths.extend(more);
    }
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), submission_paths()) {
        paths.extend(more);
    }
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), poststelle_paths()) {
        paths.extend(more);
    }
    doc
}

/// The ePoststelle: the sender's Eingangsbestätigung and the admin endpoints.
fn poststelle_paths() -> Value {
    let send = json!([{ "clientCredentials": ["https://schema.fitko.de/fit-connect/oauth/scopes/send-submissions"] }]);
    let admin = json!([{ "adminToken": [] }]);
    let errors = problem_responses(&[
        ("401", "Missing or expired access token"),
        (
            "404",
            "Not the sender's submission, or not decided yet (the detail says which)",
        ),
    ]);
    let admin_errors = problem_responses(&[
        ("401", "Missing or wrong admin token"),
        ("404", "Not found"),
    ]);
    let receipt = json!({ "tags": ["Zustelldienst"], "operationId": "zdReceipt", "security": send,
        "parameters": [path_param("id", "Submission id")],
        "summary": "The ePoststelle's Eingangsbestätigung for the sender: {receipt: claims, jws: compact JWS PS512 over them (service key of /.well-known/jwks.json), journalProof}; with Accept: application/pdf the tagged PDF/A",
        "responses": merge(json!({ "200": { "description": "Receipt", "content": {
            "application/json": { "schema": { "type": "object", "required": ["receipt", "jws"] } },
            "application/pdf": { "schema": { "type": "string", "format": "binary" } } } } }), errors) });
    json!({
        "/submission-api/v1/submissions/{id}/receipt": { "get": receipt.clone() },
        "/submission-api/v2/submissions/{id}/receipt": { "get": merge(receipt, json!({ "operationId": "zdReceiptV2" })) },
        "/api/admin/v1/destinations": { "post": { "tags": ["Admin"], "operationId": "createPlatformDestination", "security": admin.clone(),
            "summary": "A destination the platform holds for an authority (its ePoststelle): fresh RSA-4096 keys wrapped under the KEK",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["authorityArs", "services"], "properties": {
                "authorityArs": {"type": "string"}, "services": {"type": "array", "items": {"type": "object"}}, "contactInformation": {"type": "object"} } } } } },
            "responses": merge(json!({ "201": ok("{destinationId, heldByPlatform}", json!({"type": "object"})) }), admin_errors.clone()) } },
        "/api/admin/v1/data-schemas": {
            "get": { "tags": ["Admin"], "operationId": "listDataSchemas", "security": admin.clone(),
                "summary": "The registered data schemas: {count, schemas: [{uri, mediaType, sha512, registeredAt}]}",
                "responses": merge(json!({ "200": ok("Schemas", json!({"type": "object"})) }), admin_errors.clone()) },
            "post": { "tags": ["Admin"], "operationId": "registerDataSchema", "security": admin.clone(),
                "summary": "Registers a JSON Schema (draft 2020-12, self-contained, at most 1 MiB) for Fachdaten under its $id; the ePoststelle validates data naming that schemaUri against it. A URI keeps its body: a different body under a registered $id is 409",
                "requestBody": { "required": true, "content": { "application/schema+json": { "schema": { "type": "object", "required": ["$id"] } }, "application/json": { "schema": { "type": "object", "required": ["$id"] } } } },
                "responses": merge(json!({ "201": ok("{uri, sha512, created: true}", json!({"type": "object"})), "200": ok("Already registered with this body", json!({"type": "object"})) }), merge(problem_responses(&[("400", "Not JSON, no absolute $id, or not a usable self-contained JSON Schema"), ("409", "A different schema holds this $id")]), admin_errors.clone())) } },
        "/api/admin/v1/data-schemas/schema": { "get": { "tags": ["Admin"], "operationId": "getDataSchema", "security": admin.clone(),
            "parameters": [query("uri", "The schema's $id", json!({"type": "string"}), true)],
            "summary": "One registered schema's body",
            "responses": merge(json!({ "200": { "description": "The schema", "content": { "application/schema+json": { "schema": { "type": "object" } } } } }), admin_errors.clone()) } },
        "/api/admin/v1/poststelle": { "get": { "tags": ["Admin"], "operationId": "poststelleStatus", "security": admin.clone(),
            "summary": "The ePoststelle: scanner, why it accepts nothing (if so), waiting submissions by reason",
            "responses": merge(json!({ "200": ok("Status", json!({"type": "object"})) }), admin_errors.clone()) } },
        "/api/admin/v1/poststelle/cases/{id}": { "get": { "tags": ["Admin"], "operationId": "poststelleCase", "security": admin,
            "parameters": [path_param("id", "Submission id")],
            "summary": "A filed case: metadata, parts with SHA-512 (contents unwrapped with the team key and hashed, not shown), check report",
            "responses": merge(json!({ "200": ok("Case", json!({"type": "object"})) }), admin_errors) } },
    })
}

fn schemas() -> Value {
    let text = json!({"type": "string"});
    let address = json!({ "type": "object", "properties": { "street": text, "houseNumber": text, "additional": text, "zip": text, "city": text } });
    let described = json!({ "type": "object", "properties": { "description": { "type": "object", "additionalProperties": { "type": "string" } } } });
    json!({
        "Problem": { "type": "object", "required": ["type", "title", "status"], "properties": {
            "type": text, "title": text, "status": {"type": "integer"}, "detail": text, "instance": text,
            "invalidParams": { "type": "array", "items": { "type": "object", "properties": { "name": text, "reason": text } } } } },
        "RouteResult": { "type": "object", "required": ["count", "offset", "totalCount", "routes"], "properties": {
            "count": {"type": "integer"}, "offset": {"type": "integer"}, "totalCount": {"type": "integer"},
            "routes": { "type": "array", "maxItems": 500, "items": r("Route") } } },
        "Route": { "type": "object", "required": ["destinationId", "destinationSignature"], "properties": {
            "destinationId": {"type": "string", "format": "uuid"},
            "destinationSignature": {"type": "string", "description": "Compact JWS (PS512), verifiable with /.well-known/jwks.json; claims name the destination, its services (of this Leistungsgruppe) and areas"},
            "destinationName": text, "destinationShortName": text, "destinationLogo": text,
            "contactPersons": { "type": "array", "minItems": 1, "items": { "type": "object", "properties": { "name": text, "tel": text, "fax": text, "email": text } } },
            "address": address, "postalAddress": address,
            "privacyPolicyUrl": text, "imprintUrl": text, "accessibilityUrl": text, "contactFormUrl": text,
            "furtherInformation": described, "requiredDocuments": described, "legalBasis": described, "deadline": described,
            "processingDuration": { "type": "object", "properties": { "minDuration": {"type": "integer"}, "maxDuration": {"type": "integer"}, "unit": text } },
            "origin": text } },
        "AreaResult": { "type": "object", "required": ["count", "offset", "totalCount", "areas"], "properties": {
            "count": {"type": "integer"}, "offset": {"type": "integer"}, "totalCount": {"type": "integer"}, "areas": { "type": "array", "items": r("Area") } } },
        "Area": { "type": "object", "required": ["id", "name", "type"], "properties": { "id": text, "name": text, "type": text } },
        "Jwks": { "type": "object", "required": ["keys"], "properties": { "keys": { "type": "array", "items": { "type": "object", "required": ["kty", "key_ops", "alg", "x5c", "kid", "n", "e"] } } } },
        "Service": { "type": "object", "properties": { "leistungsschluessel": text, "name": text, "typisierung": text } },
        "Place": { "type": "object", "properties": { "ars": text, "name": text, "type": text, "partOf": text } },
        "AuthorityDetails": { "type": "object", "properties": {
            "address": address, "postal_address": address, "postcodes": {"type": "array", "items": text},
            "contacts": { "type": "array", "items": { "type": "object", "properties": { "name": text, "tel": text, "fax": text, "email": text } } },
            "opening_hours": {"type": "array", "items": text},
            "links": { "type": "object", "properties": { "homepage": text, "imprint": text, "privacy_policy": text, "accessibility": text, "contact_form": text, "logo": text } },
            "demo": {"type": "boolean"} } },
        "Authority": { "type": "object", "properties": { "ars": text, "kind": text, "name": text, "displayName": text, "seat": text, "parent": text,
            "active": {"type": "boolean"}, "successor": text, "destinationId": text, "details": r("AuthorityDetails") } },
        "RuleInput": { "type": "object", "required": ["service", "area"], "properties": {
            "service": {"type": "string", "description": "Leistungsschlüssel"},
            "area": {"type": "string", "description": "ARS of the area (2, 3, 5, 9 or 12 digits)"},
            "authority": {"type": "string", "description": "ARS of the responsible authority (or give level)"},
            "level": {"type": "string", "enum": ["gemeindeverband", "kreis", "land"], "description": "The authority of this level containing the place"},
            "note": {"type": "string", "maxLength": 500} } },
        "Rule": { "type": "object", "properties": { "id": {"type": "string", "format": "uuid"}, "service": text, "area": text, "authority": text, "level": text, "note": text } },
        "RuleList": { "type": "object", "properties": { "count": {"type": "integer"}, "offset": {"type": "integer"}, "totalCount": {"type": "integer"}, "rules": { "type": "array", "items": r("Rule") } } },
        "Feedback": { "type": "object", "properties": { "id": text, "authority": text, "name": text, "email": text, "message": text, "page": text, "created_at": text } },
        "ImportSummary": { "type": "object", "properties": { "import_id": text, "inserted": {"type": "integer"}, "updated": {"type": "integer"},
            "deactivated": {"type": "integer"}, "unchanged": {"type": "integer"}, "destinations_created": {"type": "integer"} } }
    })
}
