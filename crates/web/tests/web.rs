//! The web layer over HTTP, against the demo directory on each database backend. One server
//! per backend is started once for the whole binary (seeding signs ~2,000 destination
//! signatures) and the tests talk to it like any client.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use reqwest::StatusCode;
use serde_json::Value;
use store::Backend;

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

struct Server {
    base: String,
    backend: Backend,
    demo: app::demo::DemoAccounts,
}

const DEMO_CLIENT_SECRET: &str = "test-demo-client-secret-0123456789abcdefghij";

/// reqwest's TLS has no crypto provider of its own in a workspace build (see Cargo.toml).
fn tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn start(backend: Backend) -> Server {
    tls_provider();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let db = store::testing::fresh(backend).await;
            let kek = crypto::Kek::generate();
            app::install_routing_key(db.store(), &kek, crypto::testkey::shared())
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let app = app::App::open(db.store().clone(), kek, app::Settings::new(base.clone()))
                .await
                .unwrap();
            app.seed_demo().await.unwrap();
            let demo = app.seed_demo_accounts(DEMO_CLIENT_SECRET).await.unwrap();
            let config = web::WebConfig {
                admin_token: Some(ADMIN_TOKEN.into()),
                demo: true,
                routing_rate_limit: 1_000_000,
                ..Default::default()
            };
            let http = reqwest::Client::new();
            tokio::spawn(app.clone().run_logout_worker(move |uri, token| {
                let http = http.clone();
                async move {
                    let res = http
                        .post(uri)
                        .form(&[("logout_token", token)])
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    res.status()
                        .is_success()
                        .then_some(())
                        .ok_or_else(|| res.status().to_string())
                }
            }));
            let http = reqwest::Client::new();
            tokio::spawn(app.clone().run_set_signer());
            tokio::spawn(app.clone().run_journal_sequencer());
            tokio::spawn(app.clone().run_callback_worker(move |req| {
                let http = http.clone();
                async move {
                    let mut r = http
                        .post(&req.url)
                        .header("content-type", "application/json")
                        .body(req.body);
                    for (name, value) in req.headers {
                        r = r.header(name, value);
                    }
                    let res = r.send().await.map_err(|e| e.to_string())?;
                    res.status()
                        .is_success()
                        .then_some(())
                        .ok_or_else(|| res.status().to_string())
                }
            }));
            // The ePoststelle on destinations the platform holds, scanning with the test
            // clamd if there is one (without, submissions there wait: nothing unscanned).
            let scanner = std::env::var("RATHAUS_TEST_CLAMD_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .map(|u| {
                    scanner::Clamd::new(
                        scanner::ClamdUrl::parse(&u).unwrap(),
                        scanner::Timeouts::default(),
                    )
                });
            tokio::spawn(app.clone().run_poststelle(scanner));
            tokio::spawn(app.clone().run_receipt_delivery());
            let router = web::router(app, config);
            tx.send((base, demo)).unwrap();
            let _keep = db;
            web::serve(listener, router, std::future::pending())
                .await
                .unwrap();
        });
    });
    let (base, demo) = rx.recv().unwrap();
    Server {
        base,
        backend,
        demo,
    }
}

/// The servers to test against: SQLite always, PostgreSQL where configured.
fn servers() -> &'static [Server] {
    static SERVERS: OnceLock<Vec<Server>> = OnceLock::new();
    SERVERS.get_or_init(|| store::testing::backends().into_iter().map(start).collect())
}

fn client() -> reqwest::Client {
    tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let res = client().get(url).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn routes_answer_for_places_by_ars_ags_and_area_id() {
    for s in servers() {
        eprintln!("-- {:?}", s.backend);
        let url = |q: &str| format!("{}/routing-api/v1/routes?{q}", s.base);
        let (st, body) = get_json(&url("leikaKey=99115005104000&ars=032575403006")).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(body["totalCount"], 1);
        let route = &body["routes"][0];
        assert_eq!(route["destinationShortName"], "Samtgemeinde Nenndorf");
        assert_eq!(
            route["destinationName"],
            "Samtgemeinde Nenndorf, Landkreis Schaumburg"
        );
        assert!(route["contactPersons"][0]["name"].is_string());
        assert!(route["address"]["zip"].is_string());
        assert_eq!(route["processingDuration"]["unit"], "day");
        assert!(
            route["furtherInformation"]["description"]["de"]
                .as_str()
                .unwrap()
                .starts_with("<p>")
        );
        // http:// links do not fit the schema's https pattern and are left out.
        assert!(route.get("imprintUrl").is_none());

        // The same place by AGS, and the city of Hannover by AGS, and an area id from /areas.
        let (_, by_ags) = get_json(&url("leikaKey=99115005104000&ags=03241001")).await;
        assert_eq!(
            by_ags["routes"][0]["destinationShortName"],
            "Landeshauptstadt Hannover"
        );
        let (_, areas) = get_json(&format!(
            "{}/routing-api/v1/areas?areaSearchexpression=G%C3%B6ttingen",
            s.base
        ))
        .await;
        let id = areas["areas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["type"] == "Einheitsgemeinde")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, by_id) = get_json(&url(&format!("leikaKey=99013001024000&areaId={id}"))).await;
        assert_eq!(
            by_id["routes"][0]["destinationShortName"],
            "Stadt Göttingen"
        );

        // A coarse area: several routes, paged.
        let (_, all) = get_json(&url("leikaKey=99115005104000&ars=03257")).await;
        let total = all["totalCount"].as_u64().unwrap();
        assert!(total > 5);
        let (_, page) = get_json(&url("leikaKey=99115005104000&ars=03257&offset=2&limit=2")).await;
        assert_eq!(
            (
                page["count"].as_u64(),
                page["offset"].as_u64(),
                page["totalCount"].as_u64()
            ),
            (Some(2), Some(2), Some(total))
        );
        assert_eq!(
            page["routes"][0]["destinationId"],
            all["routes"][2]["destinationId"]
        );

        // Nothing responsible: an empty answer, not an error.
        let (st, none) = get_json(&url("leikaKey=99008003001000&ars=032575403006")).await;
        assert_eq!((st, none["totalCount"].as_u64()), (StatusCode::OK, Some(0)));
    }
}

#[tokio::test]
async fn invalid_routing_parameters_get_problems_naming_them() {
    for s in servers() {
        let cases = [
            ("ars=032575403006", "leikaKey"),
            ("leikaKey=12&ars=03", "leikaKey"),
            ("leikaKey=99115005104000", "ars"),
            ("leikaKey=99115005104000&ars=0325", "ars"),
            ("leikaKey=99115005104000&ags=0324100", "ags"),
            ("leikaKey=99115005104000&ars=03&ags=03241001", "ars"),
            ("leikaKey=99115005104000&areaId=abc", "areaId"),
            ("leikaKey=99115005104000&ars=03&limit=0", "limit"),
            ("leikaKey=99115005104000&ars=03&limit=501", "limit"),
            ("leikaKey=99115005104000&ars=03&offset=-1", "offset"),
            (
                "leikaKey=99115005104000&leikaKey=99115005104000&ars=03",
                "leikaKey",
            ),
        ];
        for (query, param) in cases {
            let res = client()
                .get(format!("{}/routing-api/v1/routes?{query}", s.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            assert!(res.headers().contains_key("ratelimit-limit"));
            let p: Value = res.json().await.unwrap();
            assert_eq!(p["status"], 400);
            assert_eq!(p["invalidParams"][0]["name"], param, "{query}: {p}");
            assert!(
                p["detail"].as_str().unwrap().len() > 20,
                "says how to fix it: {p}"
            );
        }
        let long = "x".repeat(3000);
        let res = client()
            .get(format!("{}/routing-api/v1/routes?q={long}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        for q in ["", "areaSearchexpression=a", "areaSearchexpression=*"] {
            let res = client()
                .get(format!("{}/routing-api/v1/areas?{q}", s.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
            assert!(res.headers().contains_key("ratelimit-limit"), "{q}");
        }
    }
}

#[tokio::test]
async fn destination_signatures_verify_with_the_published_keys() {
    for s in servers() {
        let (_, jwks) = get_json(&format!("{}/.well-known/jwks.json", s.base)).await;
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "PS512");
        assert_eq!(key["key_ops"][0], "verify");
        assert!(key["n"].as_str().unwrap().len() >= 683, "RSA-4096");
        assert!(key["x5c"][0].as_str().unwrap().len() > 100);
        let (_, body) = get_json(&format!(
            "{}/routing-api/v1/routes?leikaKey=99013001024000&ars=032410001001",
            s.base
        ))
        .await;
        let route = &body["routes"][0];
        let (header, payload) =
            crypto::verify_compact_ps512(key, route["destinationSignature"].as_str().unwrap())
                .unwrap();
        assert_eq!(header["alg"], "PS512");
        assert_eq!(header["kid"], key["kid"]);
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["destinationId"], route["destinationId"]);
        assert_eq!(claims["iss"], s.base);
        let services = claims["services"].to_string();
        assert!(services.contains("urn:de:fim:leika:leistung:99013001024000"));
        assert!(services.contains("rs:032410001"));
        assert!(claims["iat"].is_i64() && claims["jti"].is_string());
    }
}

#[tokio::test]
async fn admin_api_manages_rules_and_details() {
    for s in servers() {
        let c = client();
        let rules = format!("{}/api/admin/v1/rules", s.base);
        assert_eq!(
            c.get(&rules).send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            c.get(&rules)
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        let list: Value = c
            .get(format!("{rules}?limit=1"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(list["totalCount"].as_u64().unwrap() > 100);

        // A rule for a service nobody handles yet, for Landkreis Göttingen's area.
        let route = format!(
            "{}/routing-api/v1/routes?leikaKey=99050026001001&ars=031590016016",
            s.base
        );
        assert_eq!(get_json(&route).await.1["totalCount"], 0);
        let res = c.post(&rules).bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"service": "99050026001001", "area": "03159", "level": "kreis", "note": "test"}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let created: Value = res.json().await.unwrap();
        let id = created["rules"][0]["id"].as_str().unwrap().to_owned();
        let now = get_json(&route).await.1;
        assert_eq!(
            now["routes"][0]["destinationShortName"],
            "Landkreis Göttingen"
        );

        let dup = c.post(&rules).bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"service": "99050026001001", "area": "03159", "level": "kreis"}))
            .send().await.unwrap();
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        let bad = c
            .post(&rules)
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"service": "99050026001001", "area": "3", "level": "kreis"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            bad.json::<Value>().await.unwrap()["invalidParams"][0]["name"],
            "area"
        );
        let junk = c
            .post(&rules)
            .bearer_auth(ADMIN_TOKEN)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(junk.status(), StatusCode::BAD_REQUEST);

        let del = c
            .delete(format!("{rules}/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            c.delete(format!("{rules}/{id}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(get_json(&route).await.1["totalCount"], 0);

        // Details and legal pages of an authority.
        let details = serde_json::json!({"opening_hours": ["Mo–Fr 07:30–12:00"], "contacts": [{"name": "Bürgerbüro Test", "tel": "+49 5723 1234"}]});
        let put = c
            .put(format!("{}/api/admin/v1/authorities/03101/details", s.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&details)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::NO_CONTENT);
        let (_, a) = get_json(&format!("{}/api/v1/authorities/03101", s.base)).await;
        assert_eq!(a["details"]["opening_hours"][0], "Mo–Fr 07:30–12:00");
        let hist: Value = c
            .get(format!("{}/api/admin/v1/authorities/03101", s.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            hist["history"].as_array().unwrap().len() >= 2,
            "import + edits are recorded"
        );
        let legal = c
            .put(format!(
                "{}/api/admin/v1/authorities/03101/legal/impressum/de",
                s.base
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"content": "Echtes Impressum\n\nZweiter Absatz <b>"}))
            .send()
            .await
            .unwrap();
        assert_eq!(legal.status(), StatusCode::NO_CONTENT);
        let html = c
            .get(format!("{}/behoerden/03101/impressum", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("Echtes Impressum") && html.contains("Zweiter Absatz &lt;b&gt;"),
            "escaped"
        );
        let bad_kind = c
            .put(format!(
                "{}/api/admin/v1/authorities/03101/legal/agb/de",
                s.base
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"content": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_kind.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn finder_pages_work_without_javascript() {
    for s in servers() {
        let c = client();
        let page = |q: &str| format!("{}/zustaendigkeit?{q}", s.base);
        let res = c
            .get(page("leistung=Wohnsitz+Anmeldung&ort=Bad+Nenndorf"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(html.contains("id=\"ergebnis\""), "{html}");
        assert!(html.contains("Samtgemeinde Nenndorf"));
        let html = c
            .get(page("leistung=Hundesteuer&ort=Hannover&lang=en"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("<html lang=\"en\">") && html.contains("Landeshauptstadt Hannover"));
        // Ambiguous words offer a choice; choosing gives the answer.
        let html = c
            .get(page("leistung=Personalausweis&ort=31542"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("name=\"leistungsschluessel\""),
            "a choice of services"
        );
        let html = c
            .get(page(
                "leistung=Personalausweis&leistungsschluessel=99008001012001&ort=Bad+Nenndorf",
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("id=\"ergebnis\""));
        // Errors: a summary linking to the fields, the message beside them, 422.
        let res = c.get(page("leistung=&ort=")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("class=\"error-summary\"")
                && html.contains("href=\"#leistung\"")
                && html.contains("id=\"ort-error\"")
        );
        let html = c
            .get(page("leistung=Xylophon&ort=Atlantis"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Xylophon") && html.contains("Atlantis"));
        let long = "a".repeat(300);
        assert_eq!(
            c.get(page(&format!("leistung={long}&ort=x")))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        // Leichte Sprache.
        let html = c
            .get(page("lang=ls"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Das richtige Amt finden"));
    }
}

#[tokio::test]
async fn pages_carry_security_headers_and_unknown_pages_are_404() {
    for s in servers() {
        let res = client().get(format!("{}/", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("x-request-id"));
        let res = client()
            .get(format!("{}/gibt-es-nicht", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(res.text().await.unwrap().contains("<h1>"));
        assert_eq!(
            client()
                .get(format!("{}/behoerden/099999999", s.base))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        let api404 = client()
            .get(format!("{}/api/v1/nothing", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(api404.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn feedback_needs_the_csrf_token_and_is_stored() {
    for s in servers() {
        let c = client();
        let url = format!("{}/behoerden/032575403/barrierefreiheit", s.base);
        // No token: refused, nothing stored.
        let res = c
            .post(&url)
            .form(&[("nachricht", "Kontrast zu gering")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = c.get(&url).send().await.unwrap().text().await.unwrap();
        let token = html
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let res = c
            .post(&url)
            .form(&[
                ("csrf_token", token.as_str()),
                ("nachricht", ""),
                ("email", "kaputt"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = res.text().await.unwrap();
        assert!(html.contains("href=\"#nachricht\"") && html.contains("href=\"#email\""));
        let res = c
            .post(&url)
            .form(&[
                ("csrf_token", token.as_str()),
                ("nachricht", "Der Kontrast ist zu gering."),
                ("name", "Erika"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let list: Value = c
            .get(format!(
                "{}/api/admin/v1/feedback?authority=032575403",
                s.base
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = list["feedback"].as_array().unwrap();
        assert!(
            items
                .iter()
                .any(|f| f["message"] == "Der Kontrast ist zu gering.")
        );
        assert!(
            !items.iter().any(|f| f["message"] == "Kontrast zu gering"),
            "the forged post was not stored"
        );
    }
}

#[tokio::test]
async fn operations_endpoints() {
    for s in servers() {
        let c = client();
        assert_eq!(
            c.get(format!("{}/healthz", s.base))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let (st, ready) = get_json(&format!("{}/readyz", s.base)).await;
        assert_eq!(
            (st, ready["status"].as_str()),
            (StatusCode::OK, Some("ready"))
        );
        c.get(format!("{}/routing-api/v1/info", s.base))
            .send()
            .await
            .unwrap();
        let metrics = c
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("http_requests_total"), "{metrics}");
        assert!(metrics.contains("http_request_duration_seconds_bucket"));
        assert!(metrics.contains("route=\"/routing-api/v1/info\""));
        assert!(metrics.contains("db_pool_connections"));
        let (_, doc) = get_json(&format!("{}/api/openapi.json", s.base)).await;
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/routing-api/v1/routes",
            "/routing-api/v1/areas",
            "/routing-api/v1/info",
            "/.well-known/jwks.json",
            "/api/v1/services",
            "/api/v1/places",
            "/api/v1/authorities/{ars}",
            "/api/admin/v1/rules",
            "/api/admin/v1/rules/{id}",
            "/api/admin/v1/authorities/{ars}",
            "/api/admin/v1/authorities/{ars}/details",
            "/api/admin/v1/authorities/{ars}/legal/{kind}/{lang}",
            "/api/admin/v1/feedback",
            "/submission-api/v1/submissions",
            "/submission-api/v1/submissions/{id}/attachments/{aid}",
            "/submission-api/v1/cases/{case}/events",
            "/submission-api/v1/destinations/{id}/keys/{kid}",
            "/api/admin/v1/imports/areas",
            "/api/admin/v1/imports/services",
            "/api/admin/v1/mails",
            "/healthz",
            "/readyz",
            "/metrics",
            "/oauth/token",
            "/oauth/introspect",
            "/oauth/revoke",
            "/oidc/userinfo",
            "/oidc/jwks",
            "/.well-known/openid-configuration",
            "/api/admin/v1/clients",
            "/api/admin/v1/clients/{id}/active",
            "/api/admin/v1/clients/{id}/secret",
            "/api/admin/v1/oidc/keys/rotate",
            "/api/postfach/v1/messages",
            "/api/postfach/v1/messages/{id}",
            "/api/postfach/v1/messages/{id}/attachments/{position}",
            "/api/postfach/v1/replies",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
        }
        let (_, services) = get_json(&format!("{}/api/v1/services?q=hundesteuer", s.base)).await;
        assert_eq!(
            services["services"][0]["leistungsschluessel"],
            "99102013000000"
        );
        let (_, places) = get_json(&format!("{}/api/v1/places?q=31542", s.base)).await;
        assert!(
            places["places"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"].as_str().unwrap().contains("Nenndorf"))
        );
    }
}

/// The value of the first hidden `csrf_token` input of a page.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// A client logged in through the pages.
async fn logged_in(base: &str, email: &str, password: &str) -> reqwest::Client {
    let c = client();
    let html = c
        .get(format!("{base}/konto/anmelden"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = c
        .post(format!("{base}/konto/anmelden"))
        .form(&[
            ("csrf_token", csrf_of(&html).as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "login of {email}");
    c
}

async fn postfach_token(s: &Server) -> String {
    let api = &s.demo.postfach_api;
    let res = client()
        .post(
            api.token_url
                .replace("http://localhost", "http://127.0.0.1"),
        )
        .basic_auth(&api.client_id, Some(&api.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "postfach:deliver");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_endpoint_speaks_rfc_6749() {
    for s in servers() {
        let api = &s.demo.postfach_api;
        let url = format!("{}/oauth/token", s.base);
        let post = |form: Vec<(&'static str, String)>| {
            let url = url.clone();
            async move { client().post(url).form(&form).send().await.unwrap() }
        };
        let res = post(vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", api.client_id.clone()),
            ("client_secret", "wrong".into()),
        ])
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
        let res = post(vec![("grant_type", "password".into())]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "unsupported_grant_type"
        );
        let res = post(vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", api.client_id.clone()),
            ("client_secret", api.client_secret.clone()),
            ("scope", "openid admin".into()),
        ])
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_scope");
        // client_secret_post works as well as Basic.
        let res = post(vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", api.client_id.clone()),
            ("client_secret", api.client_secret.clone()),
        ])
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn postfach_delivery_is_recorded_opened_and_answered() {
    for s in servers() {
        eprintln!("-- {:?}", s.backend);
        let token = postfach_token(s).await;
        let messages = format!("{}/api/postfach/v1/messages", s.base);
        let recipient = s.demo.postfach_api.citizen_postfach_ref.clone();

        // Without a token: 401 with a challenge.
        let res = client()
            .post(&messages)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().contains_key("www-authenticate"));

        // Invalid input names the parameter.
        let res = client()
            .post(&messages)
            .bearer_auth(&token)
            .json(&serde_json::json!({"recipient": "unknown", "subject": "x", "body": "y"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["invalidParams"][0]["name"], "recipient");
        let res = client()
            .post(&messages)
            .bearer_auth(&token)
            .json(&serde_json::json!({"recipient": recipient, "subject": "x", "body": "y", "extra": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);

        // A delivery with two attachments, streamed as multipart.
        let pdf = b"%PDF-1.4 test".to_vec();
        let form = reqwest::multipart::Form::new()
            .part(
                "message",
                reqwest::multipart::Part::text(
                    serde_json::json!({
                        "recipient": recipient,
                        "subject": "Ihr Bescheid (Test)",
                        "body": "Erster Absatz.\n\nZweiter Absatz.",
                        "replyAllowed": true,
                        "minTrustLevel": "STORK-QAA-Level-1",
                    })
                    .to_string(),
                )
                .mime_str("application/json")
                .unwrap(),
            )
            .part(
                "attachment",
                reqwest::multipart::Part::bytes(pdf.clone())
                    .file_name("../../etc/Bescheid.pdf")
                    .mime_str("application/pdf")
                    .unwrap(),
            )
            .part(
                "attachment",
                reqwest::multipart::Part::bytes(vec![7u8; 300_000]).file_name("daten.bin"),
            );
        let res = client()
            .post(&messages)
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(res.headers().contains_key("location"));
        let placed: Value = res.json().await.unwrap();
        let id = placed["id"].as_str().unwrap().to_owned();
        assert_eq!(placed["attachments"][0]["filename"], "Bescheid.pdf");
        assert_eq!(placed["attachments"][1]["size"], 300_000);
        assert!(placed["deemedDeliveryDate"].is_string());

        let status = |token: String, id: String| {
            let url = format!("{messages}/{id}");
            async move {
                client()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let before = status(token.clone(), id.clone()).await;
        assert!(before["placedAt"].is_string());
        assert!(before["firstOpenedAt"].is_null());
        assert_eq!(before["log"][0]["event"], "placed");

        // The citizen sees it, opens it (recorded once), downloads the attachment.
        let c = logged_in(&s.base, &s.demo.citizen.username, &s.demo.citizen.password).await;
        let list = c
            .get(format!("{}/postfach", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(list.contains("Ihr Bescheid (Test)"));
        let page = c
            .get(format!("{}/postfach/{id}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("Zweiter Absatz."));
        let file = c
            .get(format!("{}/postfach/{id}/anhang/0", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), StatusCode::OK);
        assert!(
            file.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        assert_eq!(file.bytes().await.unwrap().to_vec(), pdf);
        let after = status(token.clone(), id.clone()).await;
        assert!(after["firstOpenedAt"].is_string());
        let events: Vec<&str> = after["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert!(events.contains(&"opened"));
        // The Postfach's steps are anchored in the journal as well.
        let mut kinds: Vec<String> = Vec::new();
        for _ in 0..100 {
            let (_, j) = get_json(&format!("{}/journal/v1/subjects/postfach:{id}", s.base)).await;
            kinds = j["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["entry"]["kind"].as_str().unwrap().to_owned())
                .collect();
            if kinds.iter().any(|k| k == "postfach_opened") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("postfach_placed"),
            "{kinds:?}"
        );
        assert!(kinds.iter().any(|k| k == "postfach_opened"), "{kinds:?}");

        // The reply with a file goes back to the authority.
        let form = reqwest::multipart::Form::new()
            .text("csrf_token", csrf_of(&html))
            .text("antwort", "Danke, ich zahle per Lastschrift.")
            .part(
                "anhang",
                reqwest::multipart::Part::bytes(b"Mandat".to_vec())
                    .file_name("mandat.txt")
                    .mime_str("text/plain")
                    .unwrap(),
            );
        let res = c
            .post(format!("{}/postfach/{id}/antwort", s.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let replies: Value = client()
            .get(format!("{}/api/postfach/v1/replies", s.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let reply = replies["replies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["inReplyTo"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(reply["body"], "Danke, ich zahle per Lastschrift.");
        let file = client()
            .get(format!(
                "{messages}/{}/attachments/0",
                reply["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(file.bytes().await.unwrap().as_ref(), b"Mandat");

        // A forged reply (no CSRF token) is refused and stores nothing.
        let res = c
            .post(format!("{}/postfach/{id}/antwort", s.base))
            .multipart(reqwest::multipart::Form::new().text("antwort", "gefälscht"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

        // Another citizen cannot read it.
        let other = logged_in(
            &s.base,
            &s.demo.citizen2.username,
            &s.demo.citizen2.password,
        )
        .await;
        let res = other
            .get(format!("{}/postfach/{id}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = other
            .get(format!("{}/postfach/{id}/anhang/0", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn postfach_messages_above_the_session_level_stay_closed() {
    for s in servers() {
        let token = postfach_token(s).await;
        let res = client()
            .post(format!("{}/api/postfach/v1/messages", s.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "recipient": s.demo.postfach_api.citizen_postfach_ref,
                "subject": "Nur mit Ausweis",
                "body": "Geheim",
                "minTrustLevel": 3,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let c = logged_in(&s.base, &s.demo.citizen.username, &s.demo.citizen.password).await;
        let list = c
            .get(format!("{}/postfach", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !list.contains("Nur mit Ausweis"),
            "subject hidden in the list"
        );
        let res = c
            .get(format!("{}/postfach/{id}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(!res.text().await.unwrap().contains("Geheim"));
        // Not opened: the authority still sees no first opening.
        let status: Value = client()
            .get(format!("{}/api/postfach/v1/messages/{id}", s.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(status["firstOpenedAt"].is_null());
    }
}

#[tokio::test]
async fn account_pages_register_verify_and_protect_sessions() {
    for s in servers() {
        let c = client();
        let email = format!("neu-{}@example.org", uuid::Uuid::new_v4().simple());
        let html = c
            .get(format!("{}/konto/registrieren", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("autocomplete=\"new-password\""));
        // A common password is refused next to the field.
        let res = c
            .post(format!("{}/konto/registrieren", s.base))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("email", email.as_str()),
                ("password", "password1234"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = res.text().await.unwrap();
        assert!(page.contains("href=\"#password\"") && page.contains("id=\"password-error\""));
        let res = c
            .post(format!("{}/konto/registrieren", s.base))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("email", email.as_str()),
                ("password", "Tannenbaum Fluss Gitarre 9"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // Registering the same address again looks the same.
        let again = c
            .post(format!("{}/konto/registrieren", s.base))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("email", email.as_str()),
                ("password", "Tannenbaum Fluss Gitarre 9"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::OK);

        // Unverified: login sends a new link instead of logging in.
        let login = |c: reqwest::Client, password: &'static str| {
            let base = s.base.clone();
            let email = email.clone();
            async move {
                let html = c
                    .get(format!("{base}/konto/anmelden"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                c.post(format!("{base}/konto/anmelden"))
                    .form(&[
                        ("csrf_token", csrf_of(&html).as_str()),
                        ("email", email.as_str()),
                        ("password", password),
                    ])
                    .send()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            login(c.clone(), "Tannenbaum Fluss Gitarre 9")
                .await
                .status(),
            StatusCode::OK
        );
        // The verification link from the demo's mail page.
        let mails = c
            .get(format!("{}/demo/mails", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = mails
            .split("konto&#x2f;bestaetigen?token=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let res = c
            .get(format!("{}/konto/bestaetigen?token={token}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = login(c.clone(), "Tannenbaum Fluss Gitarre 9").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("session="))
            .unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        let overview = c.get(format!("{}/konto", s.base)).send().await.unwrap();
        assert_eq!(overview.status(), StatusCode::OK);
        let html = overview.text().await.unwrap();
        assert!(html.contains(&email));

        // Wrong passwords: the same message for a known and an unknown address.
        let fail_known = login(client(), "Falsches Passwort 123").await;
        assert_eq!(fail_known.status(), StatusCode::UNPROCESSABLE_ENTITY);

        // Logout ends the session.
        let res = c
            .post(format!("{}/konto/abmelden", s.base))
            .form(&[("csrf_token", csrf_of(&html).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = c.get(format!("{}/konto", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn admins_see_the_outbox_without_bodies() {
    for s in servers() {
        let res = client()
            .get(format!("{}/api/admin/v1/mails?limit=500", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body: Value = client()
            .get(format!("{}/api/admin/v1/mails?limit=500", s.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mails = body["mails"].as_array().unwrap();
        // The demo's Postfach notices wait there (the test server has no relay).
        assert!(
            mails
                .iter()
                .any(|m| m["purpose"] == "postfach_notice" && m["status"] == "pending")
        );
        assert!(
            mails
                .iter()
                .all(|m| m.get("body").is_none() && m.get("body_text").is_none())
        );
    }
}

// ---- OpenID Connect provider ----

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn authorize_url(base: &str, client_id: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("scope", "openid email profile trust_level"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ] {
        if !extra.iter().any(|(ek, _)| *ek == k) {
            q.append_pair(k, v);
        }
    }
    for (k, v) in extra {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    format!("{base}/oidc/authorize?{}", q.finish())
}

/// Runs an authorization request for a signed-in browser, agreeing on the consent page if
/// it comes; returns the final redirect's query (code or error).
async fn authorize(c: &reqwest::Client, url: &str) -> std::collections::HashMap<String, String> {
    let res = c.get(url).send().await.unwrap();
    let res = if res.status() == StatusCode::OK {
        let html = res.text().await.unwrap();
        assert!(
            html.contains("name=\"decision\""),
            "consent page expected: {html}"
        );
        let r = html
            .split("name=\"r\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let base = url.split("/oidc/").next().unwrap();
        c.post(format!("{base}/oidc/consent"))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("r", r.as_str()),
                ("decision", "allow"),
            ])
            .send()
            .await
            .unwrap()
    } else {
        res
    };
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    query_of(&location)
}

async fn jwks_of(base: &str) -> Value {
    get_json(&format!("{base}/oidc/jwks")).await.1
}

fn verify_id_token(jwks: &Value, token: &str) -> Value {
    let kid = crypto::jwt_header(token).unwrap()["kid"].clone();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the ID token's key is published");
    crypto::verify_jwt(key, token).unwrap().claims
}

async fn token_request(
    base: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let res = client()
        .post(format!("{base}/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn oidc_code_flow_issues_verifiable_tokens_and_rotates_refresh_tokens() {
    for s in servers() {
        eprintln!("-- {:?}", s.backend);
        let (st, conf) = get_json(&format!("{}/.well-known/openid-configuration", s.base)).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(conf["issuer"], s.base.as_str());
        assert_eq!(conf["jwks_uri"], format!("{}/oidc/jwks", s.base));
        assert_eq!(
            conf["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        let rp = &s.demo.oidc_client;
        let (id, secret) = (rp.client_id.as_str(), rp.client_secret.as_str());
        let c = logged_in(&s.base, &s.demo.citizen.username, &s.demo.citizen.password).await;
        let got = authorize(&c, &authorize_url(&s.base, id, &rp.redirect_uri, &[])).await;
        assert_eq!(got["state"], "st-1");
        assert_eq!(got["iss"], s.base.as_str());
        let code = got["code"].clone();

        // A wrong verifier fails; the code is spent by that attempt.
        let (st, body) = token_request(
            &s.base,
            id,
            secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &rp.redirect_uri),
                ("code_verifier", &VERIFIER.replace('d', "e")),
            ],
        )
        .await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );

        let code =
            authorize(&c, &authorize_url(&s.base, id, &rp.redirect_uri, &[])).await["code"].clone();
        let (st, t) = token_request(
            &s.base,
            id,
            secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &rp.redirect_uri),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{t}");
        let jwks = jwks_of(&s.base).await;
        let claims = verify_id_token(&jwks, t["id_token"].as_str().unwrap());
        assert_eq!(claims["iss"], s.base.as_str());
        assert_eq!(claims["aud"], id);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["acr"], "STORK-QAA-Level-1");
        assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
        assert!(claims["auth_time"].is_i64() && claims["sid"].is_string());
        assert_eq!(
            crypto::jwt_header(t["id_token"].as_str().unwrap()).unwrap()["alg"],
            "ES256"
        );

        let at = t["access_token"].as_str().unwrap();
        let res = client()
            .get(format!("{}/oidc/userinfo", s.base))
            .bearer_auth(at)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let info: Value = res.json().await.unwrap();
        assert_eq!(info["sub"], claims["sub"]);
        assert_eq!(info["email"], s.demo.citizen.username.as_str());
        assert_eq!(info["trust_level"], "STORK-QAA-Level-1");
        assert!(info.get("organisation").is_none(), "not consented");
        // RFC 6750 § 2.2: the token may come in a form body instead of the header.
        let res = client()
            .post(format!("{}/oidc/userinfo", s.base))
            .form(&[("access_token", at)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.json::<Value>().await.unwrap(), info);

        // Introspection of one's own token.
        let intro: Value = client()
            .post(format!("{}/oauth/introspect", s.base))
            .basic_auth(id, Some(secret))
            .form(&[("token", at)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(intro["active"], true);
        assert_eq!(intro["sub"], claims["sub"]);

        // Refresh: a new pair; the old refresh token then counts as reuse and kills the family.
        let rt1 = t["refresh_token"].as_str().unwrap();
        let (st, t2) = token_request(
            &s.base,
            id,
            secret,
            &[("grant_type", "refresh_token"), ("refresh_token", rt1)],
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{t2}");
        let rt2 = t2["refresh_token"].as_str().unwrap();
        assert_ne!(rt1, rt2);
        let (st, body) = token_request(
            &s.base,
            id,
            secret,
            &[("grant_type", "refresh_token"), ("refresh_token", rt1)],
        )
        .await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        let (st, _) = token_request(
            &s.base,
            id,
            secret,
            &[("grant_type", "refresh_token"), ("refresh_token", rt2)],
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "the family is revoked");
        // ... and with it the access tokens of that sign-in (RFC 7009 § 2.1 spirit).
        let at2 = t2["access_token"].as_str().unwrap();
        let res = client()
            .get(format!("{}/oidc/userinfo", s.base))
            .bearer_auth(at2)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

        // Code reuse revokes the access token issued for it.
        let (st, _) = token_request(
            &s.base,
            id,
            secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &rp.redirect_uri),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let res = client()
            .get(format!("{}/oidc/userinfo", s.base))
            .bearer_auth(at)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );

        // Revocation (RFC 7009) of a fresh access token.
        let code =
            authorize(&c, &authorize_url(&s.base, id, &rp.redirect_uri, &[])).await["code"].clone();
        let (_, t3) = token_request(
            &s.base,
            id,
            secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &rp.redirect_uri),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        let at3 = t3["access_token"].as_str().unwrap();
        let res = client()
            .post(format!("{}/oauth/revoke", s.base))
            .basic_auth(id, Some(secret))
            .form(&[("token", at3)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let intro: Value = client()
            .post(format!("{}/oauth/introspect", s.base))
            .basic_auth(id, Some(secret))
            .form(&[("token", at3)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(intro["active"], false);

        // A web client may not use client credentials.
        let (st, body) =
            token_request(&s.base, id, secret, &[("grant_type", "client_credentials")]).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
        );
    }
}

#[tokio::test]
async fn oidc_errors_go_where_the_specifications_say() {
    for s in servers() {
        eprintln!("-- {:?}", s.backend);
        let rp = &s.demo.oidc_client;
        let id = rp.client_id.as_str();
        let anon = client();
        let get = |c: &reqwest::Client, url: String| {
            let c = c.clone();
            async move { c.get(url).send().await.unwrap() }
        };
        // Never redirect to an unregistered URI or for an unknown client.
        for url in [
            authorize_url(&s.base, id, "https://evil.example/cb", &[]),
            authorize_url(&s.base, "no-such-client", &rp.redirect_uri, &[]),
            authorize_url(
                &s.base,
                s.demo.postfach_api.client_id.as_str(),
                &rp.redirect_uri,
                &[],
            ),
        ] {
            let res = get(&anon, url).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            assert!(res.headers().get("location").is_none());
        }
        let error_of = |res: reqwest::Response| {
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
            let loc = res.headers()["location"].to_str().unwrap().to_owned();
            assert!(loc.starts_with(&rp.redirect_uri), "{loc}");
            let q = query_of(&loc);
            assert_eq!(q["state"], "st-1");
            assert_eq!(q["iss"], s.base.as_str());
            q["error"].clone()
        };
        for (extra, code) in [
            (vec![("code_challenge_method", "plain")], "invalid_request"),
            (vec![("code_challenge", "")], "invalid_request"),
            (
                vec![("response_type", "token")],
                "unsupported_response_type",
            ),
            (vec![("scope", "profile")], "invalid_scope"),
            (vec![("prompt", "none")], "login_required"),
            (
                vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
                "request_not_supported",
            ),
        ] {
            let res = get(&anon, authorize_url(&s.base, id, &rp.redirect_uri, &extra)).await;
            assert_eq!(error_of(res), code, "{extra:?}");
        }
        // Without a session: to the login page, which comes back to the request.
        let res = get(
            &anon,
            authorize_url(&s.base, id, &rp.redirect_uri, &[("ui_locales", "en")]),
        )
        .await;
        let loc = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            loc.starts_with("/konto/anmelden?lang=en&weiter=%2Foidc%2Fresume"),
            "{loc}"
        );

        let c = logged_in(
            &s.base,
            &s.demo.citizen2.username,
            &s.demo.citizen2.password,
        )
        .await;
        // Step-up beyond what the account can reach.
        for acr in ["STORK-QAA-Level-3", "http://eidas.europa.eu/LoA/high"] {
            let res = get(
                &c,
                authorize_url(&s.base, id, &rp.redirect_uri, &[("acr_values", acr)]),
            )
            .await;
            assert_eq!(error_of(res), "unmet_authentication_requirements");
        }
        // No consent yet: prompt=none cannot ask.
        let res = get(
            &c,
            authorize_url(&s.base, id, &rp.redirect_uri, &[("prompt", "none")]),
        )
        .await;
        assert_eq!(error_of(res), "consent_required");
        // Denying consent.
        let html = get(&c, authorize_url(&s.base, id, &rp.redirect_uri, &[]))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("E-Mail-Adresse") && html.contains("Vertrauensniveau"),
            "{html}"
        );
        let r = html
            .split("name=\"r\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let res = c
            .post(format!("{}/oidc/consent", s.base))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("r", r.as_str()),
                ("decision", "deny"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(res), "access_denied");
        // Agreed once, remembered: the next request answers at once, also with prompt=none.
        let got = authorize(&c, &authorize_url(&s.base, id, &rp.redirect_uri, &[])).await;
        assert!(got.contains_key("code"));
        let res = get(
            &c,
            authorize_url(&s.base, id, &rp.redirect_uri, &[("prompt", "none")]),
        )
        .await;
        assert!(query_of(res.headers()["location"].to_str().unwrap()).contains_key("code"));
        // prompt=consent asks again; prompt=login and max_age=0 send to the login page.
        let res = get(
            &c,
            authorize_url(&s.base, id, &rp.redirect_uri, &[("prompt", "consent")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        for extra in [("prompt", "login"), ("max_age", "0")] {
            let res = get(&c, authorize_url(&s.base, id, &rp.redirect_uri, &[extra])).await;
            let loc = res.headers()["location"].to_str().unwrap();
            assert!(loc.starts_with("/konto/anmelden?"), "{extra:?}: {loc}");
            assert!(loc.contains("erneut=1"));
        }
        // max_age generous enough, and login_hint naming this account: straight through.
        let hint = s.demo.citizen2.username.clone();
        let res = get(
            &c,
            authorize_url(
                &s.base,
                id,
                &rp.redirect_uri,
                &[("max_age", "3600"), ("login_hint", &hint)],
            ),
        )
        .await;
        assert!(query_of(res.headers()["location"].to_str().unwrap()).contains_key("code"));
        // Withdrawing the consent in the account brings the consent page back.
        let page = get(&c, format!("{}/konto/einwilligungen", s.base))
            .await
            .text()
            .await
            .unwrap();
        let res = c
            .post(format!("{}/konto/einwilligungen/widerrufen", s.base))
            .form(&[("csrf_token", csrf_of(&page).as_str()), ("client_id", id)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let res = get(&c, authorize_url(&s.base, id, &rp.redirect_uri, &[])).await;
        assert_eq!(res.status(), StatusCode::OK, "consent page again");
    }
}

#[tokio::test]
async fn oidc_private_key_jwt_pairwise_subjects_logout_and_key_rotation() {
    for s in servers() {
        eprintln!("-- {:?}", s.backend);
        // A relying party with its own key, pairwise subjects and both logout channels.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rp_base = format!("http://{}", listener.local_addr().unwrap());
        let rp_app = axum::Router::new().route(
            "/backchannel",
            axum::routing::post(move |body: String| {
                let tx = tx.clone();
                async move {
                    tx.send(body).unwrap();
                    StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, rp_app).await.unwrap() });
        let key = crypto::JwtSigningKey::generate(crypto::JwtAlg::Es256).unwrap();
        let redirect = format!("{rp_base}/cb");
        let admin = |req: reqwest::RequestBuilder| req.bearer_auth(ADMIN_TOKEN);
        let res = admin(client().post(format!("{}/api/admin/v1/clients", s.base)))
            .json(&serde_json::json!({
                "name": "Pairwise-Dienst",
                "kind": "web",
                "redirect_uris": [redirect],
                "post_logout_redirect_uris": [format!("{rp_base}/bye")],
                "subject_type": "pairwise",
                "id_token_alg": "RS256",
                "jwks": {"keys": [key.public_jwk()]},
                "frontchannel_logout_uri": format!("{rp_base}/front"),
                "backchannel_logout_uri": format!("{rp_base}/backchannel"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let created: Value = res.json().await.unwrap();
        let id = created["client_id"].as_str().unwrap().to_owned();
        let bad = admin(client().post(format!("{}/api/admin/v1/clients", s.base)))
            .json(&serde_json::json!({"name": "x", "kind": "web", "redirect_uris": ["http://rp.example/cb"]}))
            .send().await.unwrap();
        assert_eq!(
            bad.status(),
            StatusCode::BAD_REQUEST,
            "plain http off loopback"
        );

        let c = logged_in(&s.base, &s.demo.citizen.username, &s.demo.citizen.password).await;
        let code =
            authorize(&c, &authorize_url(&s.base, &id, &redirect, &[])).await["code"].clone();
        let assertion = |jti: &str| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            key.sign(
                "JWT",
                &serde_json::json!({
                    "iss": id, "sub": id, "aud": format!("{}/oauth/token", s.base),
                    "jti": jti, "iat": now, "exp": now + 60,
                }),
            )
            .unwrap()
        };
        let form = |a: String, code: &str| -> Vec<(String, String)> {
            vec![
                ("grant_type".into(), "authorization_code".into()),
                ("code".into(), code.into()),
                ("redirect_uri".into(), redirect.clone()),
                ("code_verifier".into(), VERIFIER.into()),
                (
                    "client_assertion_type".into(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ),
                ("client_assertion".into(), a),
            ]
        };
        let a1 = assertion("jti-1");
        let res = client()
            .post(format!("{}/oauth/token", s.base))
            .form(&form(a1.clone(), &code))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let t: Value = res.json().await.unwrap();
        let idt = t["id_token"].as_str().unwrap();
        assert_eq!(crypto::jwt_header(idt).unwrap()["alg"], "RS256");
        let claims = verify_id_token(&jwks_of(&s.base).await, idt);
        // Pairwise: not the account id the public-subject demo client sees.
        let public_sub = {
            let rp = &s.demo.oidc_client;
            let code = authorize(
                &c,
                &authorize_url(&s.base, &rp.client_id, &rp.redirect_uri, &[]),
            )
            .await["code"]
                .clone();
            let (_, t) = token_request(
                &s.base,
                &rp.client_id,
                &rp.client_secret,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &rp.redirect_uri),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await;
            verify_id_token(&jwks_of(&s.base).await, t["id_token"].as_str().unwrap())["sub"].clone()
        };
        assert_ne!(claims["sub"], public_sub);
        assert_eq!(claims["sub"].as_str().unwrap().len(), 43);
        // A replayed assertion is refused.
        let code2 =
            authorize(&c, &authorize_url(&s.base, &id, &redirect, &[])).await["code"].clone();
        let res = client()
            .post(format!("{}/oauth/token", s.base))
            .form(&form(a1, &code2))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.text().await.unwrap().contains("replay"));

        // Key rotation: new keys sign, the old ones stay published.
        let before = jwks_of(&s.base).await;
        let res = admin(client().post(format!("{}/api/admin/v1/oidc/keys/rotate", s.base)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let after = jwks_of(&s.base).await;
        let kids = |j: &Value| {
            j["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(&after).len(), kids(&before).len() + 2);
        assert!(kids(&before).iter().all(|k| kids(&after).contains(k)));
        let res = client()
            .post(format!("{}/oauth/token", s.base))
            .form(&form(assertion("jti-2"), &code2))
            .send()
            .await
            .unwrap();
        let t2: Value = res.json().await.unwrap();
        let new_kid = crypto::jwt_header(t2["id_token"].as_str().unwrap()).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!kids(&before).contains(&new_kid));
        verify_id_token(&after, t2["id_token"].as_str().unwrap());

        // RP-initiated logout with id_token_hint: no question, front-channel page, back-channel POST.
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("id_token_hint", t2["id_token"].as_str().unwrap());
        q.append_pair("post_logout_redirect_uri", &format!("{rp_base}/bye"));
        q.append_pair("state", "bye-1");
        let res = c
            .get(format!("{}/oidc/logout?{}", s.base, q.finish()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains(&format!("frame-src {rp_base}"))
        );
        let html = res.text().await.unwrap();
        assert!(html.contains("front?iss="), "{html}");
        assert!(html.contains("bye-1"));
        let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let token = form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "logout_token")
            .unwrap()
            .1
            .into_owned();
        let lt = verify_id_token(&after, &token);
        assert_eq!(lt["sid"], claims["sid"]);
        assert_eq!(lt["sub"], claims["sub"]);
        assert!(lt["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
        assert!(lt.get("nonce").is_none());
        // Signed out of the Servicekonto too.
        let res = c.get(format!("{}/konto", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        // An unregistered post-logout URI is refused.
        let res = client().get(format!("{}/oidc/logout?client_id={id}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn admin_pages_need_the_admin_token_and_register_clients() {
    for s in servers() {
        eprintln!("-- {:?}", s.backend);
        let c = client();
        let res = c
            .get(format!("{}/admin/clients", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let login = c
            .get(format!("{}/admin/anmelden", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let res = c
            .post(format!("{}/admin/anmelden", s.base))
            .form(&[
                ("csrf_token", csrf_of(&login).as_str()),
                ("admin_token", "wrong"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains("admin_token-error"));
        let res = c
            .post(format!("{}/admin/anmelden", s.base))
            .form(&[
                ("csrf_token", csrf_of(&login).as_str()),
                ("admin_token", ADMIN_TOKEN),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(
            !cookie.contains(ADMIN_TOKEN),
            "the cookie never holds the token"
        );
        let page = c
            .get(format!("{}/admin/clients", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(&s.demo.oidc_client.client_id), "{page}");
        let res = c
            .post(format!("{}/admin/clients", s.base))
            .form(&[
                ("csrf_token", csrf_of(&page).as_str()),
                ("name", "Kita-Anmeldung"),
                ("kind", "web"),
                ("redirect_uris", "http://rp.example/cb"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "plain http refused, next to the field"
        );
        let html = res.text().await.unwrap();
        assert!(
            html.contains("config-error") && html.contains("Kita-Anmeldung"),
            "input kept"
        );
        let res = c
            .post(format!("{}/admin/clients", s.base))
            .form(&[
                ("csrf_token", csrf_of(&page).as_str()),
                ("name", "Kita-Anmeldung"),
                ("kind", "web"),
                ("redirect_uris", "https://kita.example/cb\r\n"),
                ("subject_type", "pairwise"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(html.contains("client_secret") && html.contains("kita.example"));
    }
}

// ------------------------------------------------------------------ Zustelldienst

const SCOPE_SEND: &str = "https://schema.fitko.de/fit-connect/oauth/scopes/send-submissions";
const SCOPE_SUBSCRIBE: &str =
    "https://schema.fitko.de/fit-connect/oauth/scopes/subscribe-destinations";
const SCOPE_MANAGE: &str = "https://schema.fitko.de/fit-connect/oauth/scopes/manage-destinations";

/// Registers an API client through the admin API and gets a token as FIT-Connect SDKs do
/// (client_secret_post, no scope).
async fn fc_client(base: &str, name: &str, scopes: &[&str]) -> (String, String) {
    let res = client()
        .post(format!("{base}/api/admin/v1/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": name, "kind": "api", "scopes": scopes}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let c: Value = res.json().await.unwrap();
    let id = c["client_id"].as_str().unwrap().to_owned();
    let res = client()
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", c["client_secret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    for s in scopes {
        assert!(t["scope"].as_str().unwrap().contains(s), "{t}");
    }
    (id, t["access_token"].as_str().unwrap().to_owned())
}

fn problem_type(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("https://schema.fitko.de/fit-connect/submission-api/problems/")
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    if !status.is_success() {
        assert_eq!(ct, "application/problem+json", "{status} {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn zustelldienst_carries_a_submission_from_sender_to_subscriber() {
    use serde_json::json;
    let enc = crypto::testkey::shared_decryption();
    let sig = crypto::testkey::shared();
    for s in servers() {
        let base = &s.base;
        let api = format!("{base}/submission-api/v1");
        let (_, sender) = fc_client(base, "Onlinedienst", &[SCOPE_SEND]).await;
        let (_, subscriber) =
            fc_client(base, "Fachverfahren", &[SCOPE_SUBSCRIBE, SCOPE_MANAGE]).await;
        let (_, stranger) = fc_client(
            base,
            "Fremdes Fachverfahren",
            &[SCOPE_SUBSCRIBE, SCOPE_MANAGE],
        )
        .await;
        let service = "urn:de:fim:leika:leistung:99115005104000";

        let (callback_url, callback) = callback_receiver().await;
        let callback_secret = "a-callback-secret-of-at-least-32-characters";
        // The subscriber registers a destination with its public keys and activates it.
        let (st, dest) = send(client().post(format!("{api}/destinations")).bearer_auth(&subscriber).json(&json!({
            "contactInformation": {"legalName": "Samtgemeinde Nenndorf", "address": "Rodenberger Allee 13, 31542 Bad Nenndorf", "phone": "+49 5723 7040", "email": "poststelle@example.org"},
            "services": [{"identifier": service, "submissionSchemas": [{"schemaUri": "https://schema.fitko.de/fim/s00000096_1.0.schema.json", "mimeType": "application/json"}], "regions": ["DE03257"]}],
            "encryptionKid": enc.kid(), "encryptionPublicKey": enc.public_jwk(), "signingPublicKey": sig.public_jwk(),
            "metadataVersions": ["1.0.0"], "callback": {"url": callback_url, "secret": callback_secret},
        }))).await;
        assert_eq!(st, StatusCode::CREATED, "{dest}");
        let dest_id = dest["destinationId"].as_str().unwrap().to_owned();
        assert_eq!(dest["status"], "created");
        // Not active yet: senders are told precisely.
        let create = json!({"destinationId": dest_id, "announcedAttachments": [], "serviceType": {"name": "", "identifier": service}});
        let (st, p) = send(
            client()
                .post(format!("{api}/submissions"))
                .bearer_auth(&sender)
                .json(&create),
        )
        .await;
        assert_eq!(
            (st, problem_type(&p)),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "destination-state-invalid"
            ),
            "{p}"
        );
        let (st, _) = send(
            client()
                .patch(format!("{api}/destinations/{dest_id}"))
                .bearer_auth(&subscriber)
                .json(&json!({"status": "active"})),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        // Another subscriber may not touch it, and is told how to get linked.
        let (st, p) = send(
            client()
                .patch(format!("{api}/destinations/{dest_id}"))
                .bearer_auth(&stranger)
                .json(&json!({"status": "inactive"})),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(
            p["detail"].as_str().unwrap().contains("clients link"),
            "{p}"
        );

        // Senders read the public view and the key without a token.
        let (st, public) = send(client().get(format!("{api}/destinations/{dest_id}"))).await;
        assert_eq!(st, StatusCode::OK);
        assert!(public.get("contactInformation").is_none());
        let (st, key) =
            send(client().get(format!("{api}/destinations/{dest_id}/keys/{}", enc.kid()))).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(key["key_ops"], json!(["wrapKey"]));
        let enc_key = crypto::RsaEncryptionKey::from_jwk(&key).unwrap();

        // Create with a repeated attachment id (as a field SDK does), upload twice, submit.
        let att = "0b7e5a8e-7f0e-4c61-9f53-7e4b1e0a6c11";
        let (st, created) = send(
            client()
                .post(format!("{api}/submissions"))
                .bearer_auth(&sender)
                .json(&json!({
            "destinationId": dest_id, "announcedAttachments": [att, att.to_uppercase()],
            "serviceType": {"name": "", "identifier": service}})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{created}");
        let sub_id = created["submissionId"].as_str().unwrap().to_owned();
        let case_id = created["caseId"].as_str().unwrap().to_owned();
        let upload = |body: String, ct: &'static str, aid: &str| {
            client()
                .put(format!("{api}/submissions/{sub_id}/attachments/{aid}"))
                .bearer_auth(&sender)
                .header("content-type", ct)
                .body(body)
        };
        let first = crypto::jwe::encrypt(
            &enc_key,
            b"%PDF-1.7 first",
            Some("application/pdf"),
            Some(enc.kid()),
            true,
        )
        .unwrap();
        let second = crypto::jwe::encrypt(
            &enc_key,
            b"%PDF-1.7 second",
            Some("application/pdf"),
            Some(enc.kid()),
            false,
        )
        .unwrap();
        let (st, p) = send(upload(first.clone(), "application/json", att)).await;
        assert_eq!(
            (st, problem_type(&p)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
        );
        let (st, p) = send(upload(
            "eyJhbGciOiJub25lIn0.a.b.c.d".repeat(40),
            "application/jose",
            att,
        ))
        .await;
        assert_eq!(
            (st, problem_type(&p)),
            (StatusCode::BAD_REQUEST, "invalid-jwe"),
            "{p}"
        );
        assert_eq!(
            send(upload(first, "application/jose", att)).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            send(upload(second.clone(), "application/jose", att))
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        let (st, p) = send(upload(
            second.clone(),
            "application/jose",
            "0b7e5a8e-7f0e-4c61-9f53-7e4b1e0a6c99",
        ))
        .await;
        assert_eq!(
            (st, problem_type(&p)),
            (StatusCode::UNPROCESSABLE_ENTITY, "attachment-not-announced")
        );
        let metadata = json!({"contentStructure": {"attachments": [{"attachmentId": att, "purpose": "attachment", "mimeType": "application/pdf"}]}});
        let meta_jwe = crypto::jwe::encrypt(
            &enc_key,
            metadata.to_string().as_bytes(),
            Some("application/json"),
            Some(enc.kid()),
            false,
        )
        .unwrap();
        let data_jwe = crypto::jwe::encrypt(
            &enc_key,
            br#"{"name":"Erika Mustermann"}"#,
            Some("application/json"),
            Some(enc.kid()),
            false,
        )
        .unwrap();
        let (st, reduced) = send(
            client()
                .put(format!("{api}/submissions/{sub_id}"))
                .bearer_auth(&sender)
                .json(&json!({"encryptedMetadata": meta_jwe, "encryptedData": data_jwe})),
        )
        .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{reduced}");
        assert_eq!(reduced["attachments"], json!([att]));
        assert_eq!(reduced["serviceType"]["identifier"], service);
        // Twice is refused; uploads after submit too.
        let (st, _) = send(
            client()
                .put(format!("{api}/submissions/{sub_id}"))
                .bearer_auth(&sender)
                .json(&json!({"encryptedMetadata": meta_jwe})),
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            send(upload(second.clone(), "application/jose", att))
                .await
                .0,
            StatusCode::UNPROCESSABLE_ENTITY
        );

        // The destination's callback arrives, signed as FIT-Connect prescribes; an independent
        // HMAC (Python's hmac module) agrees.
        let (headers, body) = tokio::time::timeout(std::time::Duration::from_secs(20), callback)
            .await
            .unwrap()
            .unwrap();
        let cb: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            cb["type"],
            "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"
        );
        assert_eq!(cb["submissions"][0]["submissionId"], sub_id.as_str());
        assert!(!body.contains('\n'));
        let ts = &headers["callback-timestamp"];
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), (sys.argv[2]+'.'+sys.argv[3]).encode(), hashlib.sha512).hexdigest())", callback_secret, ts, &body])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            headers["callback-authentication"]
        );

        // The subscriber picks it up (without destinationId: all its destinations).
        let (st, list) = send(
            client()
                .get(format!("{api}/submissions"))
                .bearer_auth(&subscriber),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert!(
            list["submissions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["submissionId"] == sub_id.as_str()),
            "{list}"
        );
        let (st, _) = send(
            client()
                .get(format!("{api}/submissions/{sub_id}"))
                .bearer_auth(&stranger),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, got) = send(
            client()
                .get(format!("{api}/submissions/{sub_id}"))
                .bearer_auth(&subscriber),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let meta = crypto::jwe::decrypt(
            enc,
            &crypto::JweCompact::parse(got["encryptedMetadata"].as_str().unwrap()).unwrap(),
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&meta.plaintext).unwrap(),
            metadata
        );
        let res = client()
            .get(format!("{api}/submissions/{sub_id}/attachments/{att}"))
            .bearer_auth(&subscriber)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["content-type"], "application/jose");
        let body = res.text().await.unwrap();
        assert_eq!(body, second);
        let plain =
            crypto::jwe::decrypt(enc, &crypto::JweCompact::parse(&body).unwrap(), 1 << 20).unwrap();
        assert_eq!(&plain.plaintext[..], b"%PDF-1.7 second");

        // The event log: service SETs signed PS512, verifiable with the published JWKS.
        let jwks: Value = client()
            .get(format!("{base}/submission-api/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (st, log) = send(
            client()
                .get(format!("{api}/cases/{case_id}/events"))
                .bearer_auth(&sender),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let events: Vec<String> = log["eventLog"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_owned())
            .collect();
        let mut names = Vec::new();
        let mut tags = Value::Null;
        for e in &events {
            let header = crypto::jwt_header(e).unwrap();
            assert_eq!(header["typ"], "secevent+jwt");
            let key = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == header["kid"])
                .unwrap();
            let (_, payload) = crypto::verify_compact_ps512(key, e).unwrap();
            let claims: Value = serde_json::from_slice(&payload).unwrap();
            assert!(claims["iss"].as_str().unwrap().starts_with("http"));
            assert_eq!(claims["txn"], format!("case:{case_id}"));
            let (uri, payload) = claims["events"].as_object().unwrap().iter().next().unwrap();
            names.push(uri.rsplit('/').next().unwrap().to_owned());
            if uri.ends_with("submit-submission") {
                tags = payload["authenticationTags"].clone();
            }
        }
        assert_eq!(
            names,
            [
                "create-submission",
                "submit-submission",
                "forward-submission"
            ]
        );
        assert_eq!(tags["attachments"][att], second.rsplit('.').next().unwrap());

        // Accept with wrong tags: refused; with the right ones: recorded; then no reject.
        let accept = |tags: Value| {
            let claims = json!({"$schema": "https://schema.fitko.de/fit-connect/set-payload/1.2.2/set-payload.schema.json",
                "jti": uuid::Uuid::new_v4().to_string(), "iss": dest_id, "iat": 1_700_000_000, "sub": format!("submission:{sub_id}"),
                "txn": format!("case:{case_id}"), "events": {"https://schema.fitko.de/fit-connect/events/accept-submission": {"authenticationTags": tags}}});
            sig.sign_compact(Some("secevent+jwt"), claims.to_string().as_bytes())
                .unwrap()
        };
        let post = |set: String| {
            client()
                .post(format!("{api}/cases/{case_id}/events"))
                .bearer_auth(&subscriber)
                .header("content-type", "application/jose")
                .body(set)
        };
        let mut wrong = tags.clone();
        wrong["metadata"] = json!("AAAAAAAAAAAAAAAAAAAAAA");
        let (st, p) = send(post(accept(wrong))).await;
        assert_eq!(
            (st, problem_type(&p)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-event"),
            "{p}"
        );
        let (st, p) = send(post(accept(tags.clone()))).await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{p}");
        let (st, p) = send(post(accept(tags.clone()))).await;
        assert_eq!(
            (st, problem_type(&p)),
            (StatusCode::CONFLICT, "invalid-state-transition"),
            "{p}"
        );
        let (_, log) = send(
            client()
                .get(format!("{api}/submissions/{sub_id}/events"))
                .bearer_auth(&subscriber),
        )
        .await;
        assert_eq!(log["totalCount"], 4);
        // Every step is in the journal: received, fetched, accepted, each provably included in
        // a signed tree head.
        let subject = format!("submission:{sub_id}");
        let mut entries = Vec::new();
        for _ in 0..100 {
            let (_, j) = send(client().get(format!("{base}/journal/v1/subjects/{subject}"))).await;
            entries = j["entries"].as_array().unwrap().clone();
            if entries.len() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let kinds: Vec<&str> = entries
            .iter()
            .map(|e| e["entry"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["received", "fetched", "accepted"]);
        assert_eq!(entries[0]["entry"]["tenant"], dest_id.as_str());
        let (_, th) = send(client().get(format!("{base}/journal/v1/tree-head"))).await;
        let public_key = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            th["publicKey"]["publicKey"].as_str().unwrap(),
        )
        .unwrap();
        for e in &entries {
            let index = e["index"].as_u64().unwrap();
            let (st, proof) =
                send(client().get(format!("{base}/journal/v1/entries/{index}/proof"))).await;
            assert_eq!(st, StatusCode::OK, "{proof}");
            let head: journal::SignedTreeHead =
                serde_json::from_value(proof["treeHead"].clone()).unwrap();
            assert!(journal::verify_tree_head(&public_key, &head));
            let entry: journal::Entry = serde_json::from_value(proof["entry"].clone()).unwrap();
            let leaf = entry.leaf_hash().unwrap();
            let path: Vec<journal::Hash> =
                serde_json::from_value(proof["auditPath"].clone()).unwrap();
            assert!(journal::verify_inclusion(
                &leaf,
                index,
                head.tree_size,
                &path,
                &head.root_hash
            ));
        }

        // Content is not readable after the decision.
        let (st, _) = send(
            client()
                .get(format!("{api}/submissions/{sub_id}"))
                .bearer_auth(&subscriber),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);

        // v2: the service field is publicService; data is required.
        let api2 = format!("{base}/submission-api/v2");
        let (st, p) = send(
            client()
                .post(format!("{api2}/submissions"))
                .bearer_auth(&sender)
                .json(&create),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(
            p["detail"].as_str().unwrap().contains("publicService"),
            "{p}"
        );
        let (st, created) = send(client().post(format!("{api2}/submissions")).bearer_auth(&sender).json(&json!({
            "destinationId": dest_id, "announcedAttachments": [], "publicService": {"name": "Wohnsitz anmelden", "identifier": service}, "region": "DE03257"}))).await;
        assert_eq!(st, StatusCode::CREATED, "{created}");
        let sub2 = created["submissionId"].as_str().unwrap();
        let (st, _) = send(
            client()
                .put(format!("{api2}/submissions/{sub2}"))
                .bearer_auth(&sender)
                .json(&json!({"encryptedMetadata": meta_jwe})),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let (st, reduced) = send(
            client()
                .put(format!("{api2}/submissions/{sub2}"))
                .bearer_auth(&sender)
                .json(&json!({"encryptedMetadata": meta_jwe, "encryptedData": data_jwe})),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{reduced}");
        assert_eq!(reduced["publicService"]["identifier"], service);

        // Without a token: 401 as problem JSON.
        let (st, p) = send(
            client()
                .get(format!("{api}/submissions"))
                .header("authorization", "Bearer None"),
        )
        .await;
        assert_eq!(
            (st, problem_type(&p)),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
    }
}

/// A one-shot HTTP receiver on loopback: returns its URL and a future resolving to the
/// (headers, body) of the first POST it gets (answered 200).
async fn callback_receiver() -> (
    String,
    tokio::task::JoinHandle<(std::collections::HashMap<String, String>, String)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let headers: std::collections::HashMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                while buf.len() < end + 4 + len {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8(buf[end + 4..end + 4 + len].to_vec()).unwrap();
                sock.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await
                .unwrap();
                return (headers, body);
            }
        }
    });
    (url, task)
}

/// One attachment of an ePoststelle test submission: id, content, the SHA-512 the metadata
/// claims, file name, media type.
struct EpAttachment {
    id: String,
    content: Vec<u8>,
    declared_sha512: String,
    filename: &'static str,
    mime: &'static str,
}

impl EpAttachment {
    fn new(content: &[u8], filename: &'static str, mime: &'static str) -> Self {
        EpAttachment {
            id: uuid::Uuid::new_v4().to_string(),
            content: content.to_vec(),
            declared_sha512: poststelle::sha512_hex(content),
            filename,
            mime,
        }
    }
}

/// Sends a submission the way a FIT-Connect SDK does (JWE `kid` = the key's thumbprint,
/// attachments compressed) and returns (submission id, case id).
async fn ep_submit(
    api: &str,
    sender: &str,
    dest: &str,
    service: &str,
    key: &crypto::RsaEncryptionKey,
    data: &[u8],
    attachments: &[EpAttachment],
) -> (String, String) {
    ep_submit_for_schema(
        api,
        sender,
        (dest, service, FITKO_SCHEMA),
        key,
        data,
        attachments,
    )
    .await
}

const FITKO_SCHEMA: &str = "https://schema.fitko.de/fim/s00000096_1.0.schema.json";

/// [`ep_submit`] with data that names `schema` (destination, service, schema URI).
async fn ep_submit_for_schema(
    api: &str,
    sender: &str,
    target: (&str, &str, &str),
    key: &crypto::RsaEncryptionKey,
    data: &[u8],
    attachments: &[EpAttachment],
) -> (String, String) {
    ep_submit_with_reply(api, sender, target, key, data, attachments, None).await
}

/// [`ep_submit_for_schema`] with the metadata's `replyChannel` (e.g. FINK).
async fn ep_submit_with_reply(
    api: &str,
    sender: &str,
    (dest, service, schema): (&str, &str, &str),
    key: &crypto::RsaEncryptionKey,
    data: &[u8],
    attachments: &[EpAttachment],
    reply_channel: Option<Value>,
) -> (String, String) {
    use serde_json::json;
    let ids: Vec<&str> = attachments.iter().map(|a| a.id.as_str()).collect();
    let (st, created) = send(
        client()
            .post(format!("{api}/submissions"))
            .bearer_auth(sender)
            .json(&json!({"destinationId": dest, "announcedAttachments": ids,
                "serviceType": {"name": "Wohnsitz anmelden", "identifier": service}})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let sub = created["submissionId"].as_str().unwrap().to_owned();
    let case = created["caseId"].as_str().unwrap().to_owned();
    for a in attachments {
        let jwe = crypto::jwe::encrypt(key, &a.content, Some(a.mime), Some(key.thumbprint()), true)
            .unwrap();
        let (st, p) = send(
            client()
                .put(format!("{api}/submissions/{sub}/attachments/{}", a.id))
                .bearer_auth(sender)
                .header("content-type", "application/jose")
                .body(jwe),
        )
        .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{p}");
    }
    let metadata = json!({
        "contentStructure": {
            "data": {"hash": {"type": "sha512", "content": poststelle::sha512_hex(data)},
                "submissionSchema": {"schemaUri": schema, "mimeType": "application/json"}},
            "attachments": attachments.iter().map(|a| json!({
                "attachmentId": a.id, "purpose": "attachment", "mimeType": a.mime, "filename": a.filename,
                "hash": {"type": "sha512", "content": a.declared_sha512}})).collect::<Vec<_>>(),
        },
        "publicServiceType": {"identifier": service},
    });
    let mut metadata = metadata;
    if let Some(r) = reply_channel {
        metadata["replyChannel"] = r;
    }
    let enc = |b: &[u8]| {
        crypto::jwe::encrypt(
            key,
            b,
            Some("application/json"),
            Some(key.thumbprint()),
            false,
        )
        .unwrap()
    };
    let (st, p) = send(
        client()
            .put(format!("{api}/submissions/{sub}"))
            .bearer_auth(sender)
            .json(&json!({"encryptedMetadata": enc(metadata.to_string().as_bytes()), "encryptedData": enc(data)})),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{p}");
    (sub, case)
}

/// A destination the platform holds (Samtgemeinde Nenndorf's ePoststelle) for `service`
/// with the demo data schema: its id and its public encryption key, as a sender fetches it.
async fn ep_held_destination(
    base: &str,
    api: &str,
    service: &str,
) -> (String, crypto::RsaEncryptionKey) {
    use serde_json::json;
    let (st, d) = send(
        client()
            .post(format!("{base}/api/admin/v1/destinations"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"authorityArs": "032570000000",
                "services": [{"identifier": service, "submissionSchemas": [{"schemaUri": FITKO_SCHEMA, "mimeType": "application/json"}], "regions": ["DE03257"]}],
                "contactInformation": {"legalName": "Samtgemeinde Nenndorf", "address": "Rodenberger Allee 13, 31542 Bad Nenndorf", "phone": "+49 5723 7040", "email": "poststelle@example.org"}})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    let dest = d["destinationId"].as_str().unwrap().to_owned();
    let (st, public) = send(client().get(format!("{api}/destinations/{dest}"))).await;
    assert_eq!(st, StatusCode::OK, "{public}");
    let kid = public["encryptionKid"].as_str().unwrap();
    let (st, jwk) = send(client().get(format!("{api}/destinations/{dest}/keys/{kid}"))).await;
    assert_eq!(st, StatusCode::OK, "{jwk}");
    (dest, crypto::RsaEncryptionKey::from_jwk(&jwk).unwrap())
}

/// Waits until the ePoststelle decided and the receipt is there (404 before).
async fn ep_receipt(api: &str, sender: &str, sub: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (st, v) = send(
            client()
                .get(format!("{api}/submissions/{sub}/receipt"))
                .bearer_auth(sender),
        )
        .await;
        if st == StatusCode::OK {
            eprintln!(
                "ePoststelle decided {sub} within {} ms of submit",
                started.elapsed().as_millis()
            );
            return v;
        }
        assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "no decision for {sub}: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The case's event log, verified: service events with the service JWKS, the destination's
/// decision with its key from `GET /destinations/{id}/keys/{kid}`. Returns (event name,
/// payload) in order.
async fn ep_verified_events(
    api: &str,
    base: &str,
    sender: &str,
    case: &str,
) -> Vec<(String, Value)> {
    let jwks: Value = client()
        .get(format!("{base}/submission-api/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (st, log) = send(
        client()
            .get(format!("{api}/cases/{case}/events"))
            .bearer_auth(sender),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let mut out = Vec::new();
    for e in log["eventLog"].as_array().unwrap() {
        let e = e.as_str().unwrap();
        let header = crypto::jwt_header(e).unwrap();
        assert_eq!(header["typ"], "secevent+jwt");
        let unverified: Value = {
            use base64::Engine as _;
            let p = e.split('.').nth(1).unwrap();
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .unwrap(),
            )
            .unwrap()
        };
        let iss = unverified["iss"].as_str().unwrap();
        let key = if iss.starts_with("http") {
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == header["kid"])
                .unwrap()
                .clone()
        } else {
            let (st, key) = send(client().get(format!(
                "{api}/destinations/{iss}/keys/{}",
                header["kid"].as_str().unwrap()
            )))
            .await;
            assert_eq!(st, StatusCode::OK, "{key}");
            assert_eq!(key["key_ops"], serde_json::json!(["verify"]));
            key
        };
        let (_, payload) = crypto::verify_compact_ps512(&key, e).unwrap();
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        let (uri, payload) = claims["events"].as_object().unwrap().iter().next().unwrap();
        out.push((uri.rsplit('/').next().unwrap().to_owned(), payload.clone()));
    }
    out
}

fn verify_receipt(jwks: &Value, r: &Value) {
    let jws = r["jws"].as_str().unwrap();
    let header = crypto::jwt_header(jws).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the receipt is signed with a key of /.well-known/jwks.json");
    let (_, payload) = crypto::verify_compact_ps512(key, jws).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&payload).unwrap(),
        r["receipt"]
    );
}

/// The text of a PDF as poppler's `pdftotext` reads it (an independent reader).
fn pdf_text(pdf: &[u8]) -> String {
    assert!(pdf.starts_with(b"%PDF"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (package poppler-utils) runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn clamd_configured(what: &str) -> bool {
    if std::env::var("RATHAUS_TEST_CLAMD_URL").is_ok_and(|u| !u.is_empty()) {
        true
    } else if std::env::var("RATHAUS_TEST_REQUIRE_CLAMD").as_deref() == Ok("1") {
        panic!("RATHAUS_TEST_REQUIRE_CLAMD=1 but RATHAUS_TEST_CLAMD_URL is not set");
    } else {
        eprintln!(
            "note: skipping {what}: no RATHAUS_TEST_CLAMD_URL (start one with scripts/clamd-throwaway start)"
        );
        false
    }
}

#[tokio::test]
async fn poststelle_validates_data_against_registered_schemas() {
    use serde_json::json;
    if !clamd_configured("the data-schema test") {
        return;
    }
    let service = "urn:de:fim:leika:leistung:99115005104000";
    let schema_uri = "https://schema.rathaus.example/test/anmeldung/1.0.json";
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri,
        "type": "object",
        "required": ["familienname", "geburtsdatum"],
        "additionalProperties": false,
        "properties": {
            "familienname": {"type": "string", "maxLength": 40},
            "geburtsdatum": {"type": "string", "format": "date"}
        }
    });
    for s in servers() {
        let base = &s.base;
        let api = format!("{base}/submission-api/v1");
        let admin = |path: &str| {
            client()
                .post(format!("{base}/api/admin/v1/{path}"))
                .bearer_auth(ADMIN_TOKEN)
        };
        // Registration: created, then unchanged; a different body under the URI, a schema
        // without $id and one that is no JSON Schema are refused with the reason.
        let (st, r) = send(admin("data-schemas").json(&schema)).await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
        assert_eq!(r["uri"], schema_uri);
        let sha = r["sha512"].as_str().unwrap().to_owned();
        let (st, r) = send(admin("data-schemas").json(&schema)).await;
        assert_eq!((st, &r["created"]), (StatusCode::OK, &json!(false)), "{r}");
        let mut changed = schema.clone();
        changed["properties"]["familienname"]["maxLength"] = json!(80);
        let (st, p) = send(admin("data-schemas").json(&changed)).await;
        assert_eq!(st, StatusCode::CONFLICT, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("new \"$id\""), "{p}");
        let (st, p) = send(admin("data-schemas").json(&json!({"type": "object"}))).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
        assert!(p.to_string().contains("$id"), "{p}");
        let (st, p) = send(
            admin("data-schemas").json(&json!({"$id": "https://x.example/s.json", "type": 17})),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
        let (st, list) = send(
            client()
                .get(format!("{base}/api/admin/v1/data-schemas"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert!(
            list["schemas"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["uri"] == schema_uri && e["sha512"] == sha.as_str()),
            "{list}"
        );
        let res = client()
            .get(format!("{base}/api/admin/v1/data-schemas/schema"))
            .query(&[("uri", schema_uri)])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["content-type"], "application/schema+json");
        assert_eq!(res.json::<Value>().await.unwrap(), schema);

        let (st, d) = send(admin("destinations").json(&json!({"authorityArs": "032570000000",
            "services": [{"identifier": service, "submissionSchemas": [
                {"schemaUri": FITKO_SCHEMA, "mimeType": "application/json"},
                {"schemaUri": schema_uri, "mimeType": "application/json"}], "regions": ["DE03257"]}],
            "contactInformation": {"legalName": "Samtgemeinde Nenndorf", "address": "Rodenberger Allee 13, 31542 Bad Nenndorf", "phone": "+49 5723 7040", "email": "poststelle@example.org"}})))
        .await;
        assert_eq!(st, StatusCode::CREATED, "{d}");
        let dest = d["destinationId"].as_str().unwrap().to_owned();
        let (_, sender) = fc_client(base, "Onlinedienst Schema", &[SCOPE_SEND]).await;
        let (_, public) = send(client().get(format!("{api}/destinations/{dest}"))).await;
        let kid = public["encryptionKid"].as_str().unwrap();
        let (_, jwk) = send(client().get(format!("{api}/destinations/{dest}/keys/{kid}"))).await;
        let key = crypto::RsaEncryptionKey::from_jwk(&jwk).unwrap();
        let key = &key;
        let (api, sender, dest) = (api.as_str(), sender.as_str(), dest.as_str());
        let decided = |data: &'static [u8], schema: &'static str| async move {
            let (sub, _) =
                ep_submit_for_schema(api, sender, (dest, service, schema), key, data, &[]).await;
            ep_receipt(api, sender, &sub).await["receipt"].clone()
        };

        // Valid data: accepted, the receipt names the schema and its hash.
        let c = decided(
            br#"{"familienname":"Mustermann","geburtsdatum":"1990-02-03"}"#,
            schema_uri,
        )
        .await;
        assert_eq!(c["decision"]["result"], "accepted", "{c}");
        assert_eq!(c["dataValidation"]["valid"], true, "{c}");
        assert_eq!(c["dataValidation"]["schema"], schema_uri);
        assert_eq!(c["dataValidation"]["schemaSha512"], sha.as_str());

        // Invalid data: rejected with schema-violation naming the paths, not the values.
        let c = decided(
            br#"{"familienname":"Mustermann","geburtsdatum":"03.02.1990","iban":"DE02"}"#,
            schema_uri,
        )
        .await;
        assert_eq!(c["decision"]["result"], "rejected", "{c}");
        let p = &c["decision"]["problems"][0];
        assert_eq!(
            p["type"], "https://schema.fitko.de/fit-connect/events/problems/schema-violation",
            "{c}"
        );
        assert_eq!(p["instance"], "data");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains("/geburtsdatum"), "{detail}");
        assert!(
            !detail.contains("03.02.1990") && !detail.contains("DE02"),
            "no values in the detail: {detail}"
        );
        assert_eq!(c["dataValidation"]["valid"], false, "{c}");

        // A schema the destination does not list: unsupported-schema.
        let c = decided(br#"{}"#, "https://schema.rathaus.example/test/other/9.json").await;
        assert_eq!(c["decision"]["result"], "rejected", "{c}");
        assert_eq!(
            c["decision"]["problems"][0]["type"],
            "https://schema.fitko.de/fit-connect/events/problems/unsupported-schema",
            "{c}"
        );

        // A listed schema the platform does not know: accepted, reported as not validated.
        let c = decided(br#"{"anything":1}"#, FITKO_SCHEMA).await;
        assert_eq!(c["decision"]["result"], "accepted", "{c}");
        assert_eq!(c["dataValidation"]["valid"], Value::Null, "{c}");
        assert!(
            c["dataValidation"]["note"]
                .as_str()
                .unwrap()
                .contains("not registered"),
            "{c}"
        );
    }
}

/// The portal's submissions get their Eingangsbestätigung in the citizen's Postfach (the
/// FINK reply channel of the metadata); other senders naming a Postfach do not.
#[tokio::test]
async fn poststelle_places_the_receipt_in_the_citizens_postfach_for_portal_senders() {
    use serde_json::json;
    if !clamd_configured("the receipt-to-Postfach test") {
        return;
    }
    let service = "urn:de:fim:leika:leistung:99115005104000";
    for s in servers() {
        let base = &s.base;
        let api = format!("{base}/submission-api/v1");
        let (dest, key) = ep_held_destination(base, &api, service).await;
        let (_, portal) = fc_client(
            base,
            "Portal",
            &[
                SCOPE_SEND,
                app::receipt_delivery::SCOPE_RECEIPTS_TO_POSTFACH,
            ],
        )
        .await;
        let (_, other) = fc_client(base, "Fremder Onlinedienst", &[SCOPE_SEND]).await;
        let postfach = s.demo.postfach_api.citizen_postfach_ref.clone();
        let fink = json!({"fink": {"finkPostfachRef": postfach, "host": format!("{base}/")}});
        let data = br#"{"familienname":"Mustermann","vorname":"Erika"}"#;

        let (sub, case) = ep_submit_with_reply(
            &api,
            &portal,
            (&dest, service, FITKO_SCHEMA),
            &key,
            data,
            &[],
            Some(fink.clone()),
        )
        .await;
        let (foreign, _) = ep_submit_with_reply(
            &api,
            &other,
            (&dest, service, FITKO_SCHEMA),
            &key,
            data,
            &[],
            Some(fink),
        )
        .await;
        let r = ep_receipt(&api, &portal, &sub).await;
        assert_eq!(r["receipt"]["decision"]["result"], "accepted");
        ep_receipt(&api, &other, &foreign).await;

        // The citizen finds it in the Postfach, with the PDF and the signed JSON.
        let c = logged_in(base, &s.demo.citizen.username, &s.demo.citizen.password).await;
        let id = app::receipt_delivery::receipt_message_id(&sub);
        let started = std::time::Instant::now();
        let page = loop {
            let res = c.get(format!("{base}/postfach/{id}")).send().await.unwrap();
            if res.status() == StatusCode::OK {
                break res.text().await.unwrap();
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "no receipt in the Postfach: HTTP {}",
                res.status()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        eprintln!(
            "receipt in the Postfach {} ms after the decision",
            started.elapsed().as_millis()
        );
        assert!(page.contains("Eingangsbestätigung"), "{page}");
        assert!(page.contains("angenommen"), "{page}");
        assert!(page.contains(&case), "the case number is named");
        let pdf = c
            .get(format!("{base}/postfach/{id}/anhang/0"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "the first attachment is the PDF");
        let signed: Value = c
            .get(format!("{base}/postfach/{id}/anhang/1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            signed["jws"], r["jws"],
            "the same sealed receipt as the sender's"
        );
        assert_eq!(signed["receipt"]["submissionId"], sub.as_str());
        assert!(
            signed["journalProof"]["auditPath"].is_array(),
            "delivered with the decision's journal proof: {signed}"
        );

        // The other sender named the same Postfach, but may not have receipts put there.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let res = c
            .get(format!(
                "{base}/postfach/{}",
                app::receipt_delivery::receipt_message_id(&foreign)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn poststelle_checks_scans_decides_and_confirms_receipt() {
    use serde_json::json;
    if !clamd_configured("the ePoststelle test") {
        return;
    }
    let service = "urn:de:fim:leika:leistung:99115005104000";
    for s in servers() {
        let base = &s.base;
        let api = format!("{base}/submission-api/v1");
        // The authority's ePoststelle: a destination the platform holds.
        let (dest, key) = ep_held_destination(base, &api, service).await;
        let (_, sender) = fc_client(base, "Onlinedienst ePoststelle", &[SCOPE_SEND]).await;
        let (_, other) = fc_client(base, "Anderer Onlinedienst", &[SCOPE_SEND]).await;
        let jwks: Value = client()
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = br#"{"familienname":"Mustermann","vorname":"Erika"}"#;

        // 1. Clean: accepted, signed by the destination, receipt verifiable, PDF.
        let pdf = EpAttachment::new(
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
            "Meldeschein.pdf",
            "application/pdf",
        );
        let (sub, case) = ep_submit(
            &api,
            &sender,
            &dest,
            service,
            &key,
            data,
            std::slice::from_ref(&pdf),
        )
        .await;
        let r = ep_receipt(&api, &sender, &sub).await;
        verify_receipt(&jwks, &r);
        let c = &r["receipt"];
        assert_eq!(c["decision"]["result"], "accepted", "{c}");
        assert_eq!(c["submissionId"], sub.as_str());
        assert_eq!(c["caseId"], case.as_str());
        assert_eq!(c["destinationId"], dest.as_str());
        assert_eq!(c["authority"]["ars"], "032570000000");
        assert_eq!(c["service"]["identifier"], service);
        assert!(
            c["scanner"]["engine"]
                .as_str()
                .unwrap()
                .starts_with("ClamAV"),
            "{c}"
        );
        assert_eq!(c["metadata"]["validation"]["valid"], true);
        let att = c["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["instance"] == format!("attachment:{}", pdf.id))
            .unwrap();
        assert_eq!(att["filename"], "Meldeschein.pdf");
        assert_eq!(att["size"], pdf.content.len());
        assert_eq!(att["sha512"], pdf.declared_sha512.as_str());
        assert_eq!(att["scan"], "clean");
        assert!(c.get("journal").is_some(), "hook for the journal proof");
        let events = ep_verified_events(&api, base, &sender, &case).await;
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "create-submission",
                "submit-submission",
                "forward-submission",
                "accept-submission"
            ]
        );
        assert_eq!(
            events[3].1["authenticationTags"], events[1].1["authenticationTags"],
            "the accept repeats the tags the Zustelldienst published"
        );
        // Filed for the clerks: contents readable with the team key, unchanged.
        let (st, filed) = send(
            client()
                .get(format!("{base}/api/admin/v1/poststelle/cases/{sub}"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{filed}");
        assert_eq!(filed["caseId"], case.as_str());
        assert_eq!(filed["authorityArs"], "032570000000");
        assert_eq!(filed["attachments"][0]["filename"], "Meldeschein.pdf");
        assert_eq!(
            filed["attachments"][0]["contentSha512"],
            pdf.declared_sha512.as_str()
        );
        assert_eq!(
            filed["data"]["contentSha512"],
            poststelle::sha512_hex(data).as_str()
        );
        assert_eq!(filed["checkReport"]["decision"]["result"], "accepted");
        assert_eq!(filed["checkReport"]["parts"][1]["scan"], "clean");
        let res = client()
            .get(format!(
                "{base}/submission-api/v2/submissions/{sub}/receipt"
            ))
            .bearer_auth(&sender)
            .header("accept", "application/pdf")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/pdf");
        assert_eq!(res.headers()["content-language"], "de");
        let german = pdf_text(&res.bytes().await.unwrap());
        assert!(german.contains("Eingegangen am"), "{german}");
        let res = client()
            .get(format!("{api}/submissions/{sub}/receipt"))
            .bearer_auth(&sender)
            .header("accept", "application/pdf")
            .header("accept-language", "en-GB,en;q=0.9,de;q=0.5")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["content-language"], "en");
        let english = pdf_text(&res.bytes().await.unwrap());
        assert!(
            english.contains("Received at") && english.contains("Virus scanner"),
            "{english}"
        );
        // Once sequenced, the receipt carries the journal proof of the decision, which
        // verifies against the signed tree head.
        let mut proof = Value::Null;
        for _ in 0..100 {
            let (_, r) = send(
                client()
                    .get(format!("{api}/submissions/{sub}/receipt"))
                    .bearer_auth(&sender),
            )
            .await;
            proof = r["journalProof"].clone();
            if !proof.is_null() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(proof["entry"]["kind"], "accepted", "{proof}");
        let head: journal::SignedTreeHead =
            serde_json::from_value(proof["treeHead"].clone()).unwrap();
        let entry: journal::Entry = serde_json::from_value(proof["entry"].clone()).unwrap();
        let path: Vec<journal::Hash> = serde_json::from_value(proof["auditPath"].clone()).unwrap();
        assert!(journal::verify_inclusion(
            &entry.leaf_hash().unwrap(),
            proof["index"].as_u64().unwrap(),
            head.tree_size,
            &path,
            &head.root_hash
        ));
        // Only the sender gets the receipt.
        let (st, p) = send(
            client()
                .get(format!("{api}/submissions/{sub}/receipt"))
                .bearer_auth(&other),
        )
        .await;
        assert_eq!(
            (st, problem_type(&p)),
            (StatusCode::NOT_FOUND, "submission-not-found")
        );

        // 2. EICAR (built from halves, so no file holds it whole): rejected, not received.
        let eicar = [
            r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR",
            "-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
        ]
        .concat();
        let bad = EpAttachment::new(eicar.as_bytes(), "rechnung.com", "application/octet-stream");
        let (sub2, case2) = ep_submit(
            &api,
            &sender,
            &dest,
            service,
            &key,
            data,
            &[
                EpAttachment::new(b"%PDF-1.7 clean", "Antrag.pdf", "application/pdf"),
                bad,
            ],
        )
        .await;
        let r = ep_receipt(&api, &sender, &sub2).await;
        verify_receipt(&jwks, &r);
        let c = &r["receipt"];
        assert_eq!(c["decision"]["result"], "rejected", "{c}");
        let problems = c["decision"]["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{c}");
        assert_eq!(
            problems[0]["type"],
            "https://schema.fitko.de/fit-connect/events/problems/malware-detected"
        );
        assert!(
            problems[0]["instance"]
                .as_str()
                .unwrap()
                .starts_with("attachment:")
        );
        assert!(
            problems[0]["detail"]
                .as_str()
                .unwrap()
                .contains("not received")
        );
        let (st, _) = send(
            client()
                .get(format!("{base}/api/admin/v1/poststelle/cases/{sub2}"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(
            st,
            StatusCode::NOT_FOUND,
            "rejected submissions are not filed"
        );
        let events = ep_verified_events(&api, base, &sender, &case2).await;
        let (name, payload) = events.last().unwrap();
        assert_eq!(name, "reject-submission");
        assert_eq!(payload["problems"][0]["type"], problems[0]["type"]);
        let res = client()
            .get(format!("{api}/submissions/{sub2}/receipt"))
            .bearer_auth(&sender)
            .header("accept", "application/pdf")
            .send()
            .await
            .unwrap();
        assert!(res.bytes().await.unwrap().starts_with(b"%PDF"));

        // 3. A wrong SHA-512 in the metadata: rejected with hash-mismatch.
        let mut wrong = EpAttachment::new(b"%PDF-1.7 swapped", "Antrag.pdf", "application/pdf");
        wrong.declared_sha512 = poststelle::sha512_hex(b"%PDF-1.7 original");
        let wrong_instance = format!("attachment:{}", wrong.id);
        let (sub3, case3) = ep_submit(&api, &sender, &dest, service, &key, data, &[wrong]).await;
        let r = ep_receipt(&api, &sender, &sub3).await;
        let c = &r["receipt"];
        assert_eq!(c["decision"]["result"], "rejected");
        assert_eq!(
            c["decision"]["problems"][0]["type"],
            "https://schema.fitko.de/fit-connect/events/problems/hash-mismatch"
        );
        assert_eq!(
            c["decision"]["problems"][0]["instance"],
            wrong_instance.as_str()
        );
        let events = ep_verified_events(&api, base, &sender, &case3).await;
        assert_eq!(events.last().unwrap().0, "reject-submission");

        // After a key rotation, a sender still encrypting to the old (now retired) key is
        // served: the ePoststelle tries every key of the destination.
        let (st, rotated) = send(
            client()
                .post(format!(
                    "{base}/api/admin/v1/destinations/{dest}/keys/rotate"
                ))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{rotated}");
        assert_ne!(
            rotated["encryptionKid"].as_str().unwrap(),
            key.kid().unwrap()
        );
        let (sub4, _) = ep_submit(
            &api,
            &sender,
            &dest,
            service,
            &key,
            data,
            &[EpAttachment::new(
                b"%PDF-1.7 late",
                "Nachtrag.pdf",
                "application/pdf",
            )],
        )
        .await;
        let r = ep_receipt(&api, &sender, &sub4).await;
        assert_eq!(r["receipt"]["decision"]["result"], "accepted", "{r}");

        // Not decided (not even submitted): 404 saying so.
        let (_, created) = send(
            client()
                .post(format!("{api}/submissions"))
                .bearer_auth(&sender)
                .json(&json!({"destinationId": dest, "announcedAttachments": [],
                    "serviceType": {"name": "", "identifier": service}})),
        )
        .await;
        let (st, p) = send(
            client()
                .get(format!(
                    "{api}/submissions/{}/receipt",
                    created["submissionId"].as_str().unwrap()
                ))
                .bearer_auth(&sender),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert!(
            p["detail"].as_str().unwrap().contains("not decided yet"),
            "{p}"
        );
    }
}

#[tokio::test]
async fn poststelle_waits_without_a_reachable_scanner_and_readyz_says_why() {
    use serde_json::json;
    tls_provider();
    let db = store::testing::fresh(Backend::Sqlite).await;
    let kek = crypto::Kek::generate();
    app::install_routing_key(db.store(), &kek, crypto::testkey::shared())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = app::App::open(db.store().clone(), kek, app::Settings::new(base.clone()))
        .await
        .unwrap();
    let dead = scanner::Clamd::new(
        scanner::ClamdUrl::parse("unix:///nonexistent/rathaus-test/clamd.sock").unwrap(),
        scanner::Timeouts::default(),
    );
    tokio::spawn(app.clone().run_poststelle(Some(dead)));
    let config = web::WebConfig {
        admin_token: Some(ADMIN_TOKEN.into()),
        routing_rate_limit: 1_000_000,
        ..Default::default()
    };
    tokio::spawn(web::serve(
        listener,
        web::router(app.clone(), config),
        std::future::pending(),
    ));
    let service = "urn:de:fim:leika:leistung:99115005104000";
    let api = format!("{base}/submission-api/v1");
    let (st, d) = send(
        client()
            .post(format!("{base}/api/admin/v1/destinations"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"authorityArs": "032570000000",
                "services": [{"identifier": service, "submissionSchemas": [{"schemaUri": "https://schema.fitko.de/fim/s00000096_1.0.schema.json", "mimeType": "application/json"}], "regions": ["DE03257"]}]})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    let dest = d["destinationId"].as_str().unwrap().to_owned();
    let (_, sender) = fc_client(&base, "Onlinedienst", &[SCOPE_SEND]).await;
    let (_, public) = send(client().get(format!("{api}/destinations/{dest}"))).await;
    let kid = public["encryptionKid"].as_str().unwrap();
    let (_, jwk) = send(client().get(format!("{api}/destinations/{dest}/keys/{kid}"))).await;
    let key = crypto::RsaEncryptionKey::from_jwk(&jwk).unwrap();
    let (sub, case) = ep_submit(
        &api,
        &sender,
        &dest,
        service,
        &key,
        b"{}",
        &[EpAttachment::new(b"%PDF-1.7", "a.pdf", "application/pdf")],
    )
    .await;

    // The worker fetched it but accepts nothing unscanned: it waits, and readiness says why.
    let started = std::time::Instant::now();
    let status = loop {
        let (st, status) = send(
            client()
                .get(format!("{base}/api/admin/v1/poststelle"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        if status["waiting"].as_array().is_some_and(|w| {
            w.iter()
                .any(|x| x["reason"].as_str().unwrap().starts_with("pending-scan"))
        }) {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        status["waiting"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{status}"
    );
    assert_eq!(status["waiting"][0]["count"], 1);
    assert!(
        status["problem"]
            .as_str()
            .unwrap()
            .contains("virus scanner"),
        "{status}"
    );
    let (st, ready) = get_json(&format!("{base}/readyz")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ready["poststelle"]["status"], "waiting", "{ready}");
    assert!(
        ready["reasons"][0]
            .as_str()
            .unwrap()
            .contains("virus scanner does not answer"),
        "{ready}"
    );
    // The admin page says it too.
    let c = client();
    let login = c
        .get(format!("{base}/admin/anmelden"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = c
        .post(format!("{base}/admin/anmelden"))
        .form(&[
            ("csrf_token", csrf_of(&login).as_str()),
            ("admin_token", ADMIN_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = c
        .get(format!("{base}/admin/clients"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("ePoststelle"), "{page}");
    assert!(page.contains("virus scanner does not answer"), "{page}");
    assert!(page.contains("pending-scan"), "{page}");
    let events = ep_verified_events(&api, &base, &sender, &case).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "create-submission",
            "submit-submission",
            "forward-submission"
        ]
    );
    let (st, p) = send(
        client()
            .get(format!("{api}/submissions/{sub}/receipt"))
            .bearer_auth(&sender),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(
        p["detail"].as_str().unwrap().contains("not decided yet"),
        "{p}"
    );
    drop(db);
}
