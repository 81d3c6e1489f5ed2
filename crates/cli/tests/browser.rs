//! A real browser: Debian's headless Chromium (driven by playwright-core, `tests/browser/live.mjs`)
//! opens the web page, registers a person through it and sees them listed, then watches the live
//! view with a fake camera playing a photo of a registered person until that person's name appears.
//! Screenshots are kept in target/test-artifacts/browser/.

mod support;

use std::io::Write;
use std::process::Command;

use support::*;

/// A YUV4MPEG2 (yuv420p) clip of `frames` identical 640x480 frames with the photo in the middle:
/// what Chromium's fake camera plays. BT.601 limited range, as ffmpeg writes it.
fn y4m_from(photo: &[u8], frames: usize) -> Vec<u8> {
    let photo = image::load_from_memory(photo).unwrap().to_rgb8();
    let scaled = image::imageops::resize(
        &photo,
        320,
        320 * photo.height() / photo.width(),
        image::imageops::FilterType::Triangle,
    );
    let mut canvas = image::RgbImage::from_pixel(640, 480, image::Rgb([90, 90, 90]));
    let top = (480i64 - i64::from(scaled.height())).max(0) / 2;
    image::imageops::overlay(&mut canvas, &scaled, 160, top);
    let (w, h) = (640usize, 480usize);
    let mut y_plane = vec![0u8; w * h];
    let mut u_plane = vec![0u8; w * h / 4];
    let mut v_plane = vec![0u8; w * h / 4];
    for (x, y, p) in canvas.enumerate_pixels() {
        let [r, g, b] = p.0.map(|c| f32::from(c) / 255.0);
        y_plane[y as usize * w + x as usize] =
            (16.0 + 65.481 * r + 128.553 * g + 24.966 * b).round() as u8;
        if x % 2 == 0 && y % 2 == 0 {
            let i = (y as usize / 2) * (w / 2) + x as usize / 2;
            u_plane[i] = (128.0 - 37.797 * r - 74.203 * g + 112.0 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
            v_plane[i] = (128.0 + 112.0 * r - 93.786 * g - 18.214 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    let mut out = format!("YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..frames {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(&y_plane);
        out.extend_from_slice(&u_plane);
        out.extend_from_slice(&v_plane);
    }
    out
}

/// What `tests/browser/live.mjs` saw, run against `server` (its key, if any, in the page's
/// sessionStorage), with or without the hostile page of another origin first.
async fn run_browser(server: &Server, key: Option<&str>, attack: bool) -> serde_json::Value {
    let script = workspace().join("tests/browser/live.mjs");
    assert!(
        workspace()
            .join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: run `make setup-test` (scripts/setup-browser.sh)"
    );
    let yao = registry_photo("vectron/yaoming.jpg");
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(yao.clone(), "yao.jpg"))
        .text("name", "Yao Ming")
        .text("consent", "true");
    assert_eq!(server.post_form("/v1/register", form).await.status(), 201);

    let dir = tempfile::tempdir().unwrap();
    let y4m = dir.path().join("camera.y4m");
    std::fs::File::create(&y4m)
        .unwrap()
        .write_all(&y4m_from(&yao, 5))
        .unwrap();
    // Someone else to register through the page: the largest face of t1.jpg, cropped.
    let t1 = image::load_from_memory(&registry_photo("insightface/t1.jpg")).unwrap();
    let person = dir.path().join("person.png");
    t1.crop_imm(400, 200, 240, 280).save(&person).unwrap();
    let shots = workspace().join(if attack {
        "target/test-artifacts/browser-attack"
    } else {
        "target/test-artifacts/browser"
    });

    // The script puts the key where the page's "Use key" button would: the tab's sessionStorage.
    let mut command = Command::new("node");
    command.arg(&script).args([
        &server.url,
        y4m.to_str().unwrap(),
        person.to_str().unwrap(),
        "Yao Ming",
        shots.to_str().unwrap(),
    ]);
    if let Some(key) = key {
        command.env("FACEREC_TEST_API_KEY", key);
    }
    if attack {
        command.env("FACEREC_TEST_ATTACK", "1");
    }
    let result = browser_result(command);
    assert_eq!(result["registered"], true, "{result}");
    assert_eq!(result["listed"], true, "{result}");
    assert!(
        result["liveName"].as_str().unwrap().contains("Yao Ming"),
        "{result}"
    );
    assert!(shots.join("persons.png").is_file() && shots.join("live.png").is_file());
    // The accuracy view, after "Recalibrate now" with the two persons registered: a gallery that
    // small keeps the floor and says so.
    let sentence = result["accuracy"].as_str().unwrap_or_default();
    assert!(
        sentence.contains("2 persons") && sentence.contains("weak"),
        "{result}"
    );
    for canvas in ["histograms", "curve"] {
        assert!(
            result["accuracyDrawn"][canvas].as_u64() > Some(500),
            "the {canvas} canvas is drawn: {result}"
        );
    }
    assert!(shots.join("accuracy.png").is_file());
    // The key's collection and scopes in the header; the admin pages: a collection and a key of it
    // created, the secret shown once and copied, working as that collection's key; the collection
    // deleted from the page.
    let whoami = result["whoami"].as_str().unwrap_or_default();
    assert!(
        whoami.contains("default") && whoami.contains("admin"),
        "{result}"
    );
    assert_eq!(result["adminTabShown"], true, "{result}");
    let secret = result["newKey"].as_str().unwrap_or_default();
    assert_eq!(secret.len(), 43, "{result}");
    assert_eq!(
        result["copied"].as_str(),
        Some(secret),
        "the copy button copies the key"
    );
    assert_eq!(
        result["newKeyMe"]["collection"]["name"], "lobby",
        "{result}"
    );
    assert_eq!(
        result["newKeyMe"]["scopes"],
        serde_json::json!(["recognize"])
    );
    assert_eq!(
        result["collectionsAfterDelete"],
        serde_json::json!(["default"]),
        "{result}"
    );
    assert!(shots.join("admin.png").is_file());
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_registers_and_names_a_person_on_the_live_view() {
    let server = Server::start(Db::Sqlite, &["--api-keys", "browser-test-key-0001"]).await;
    run_browser(&server, Some("browser-test-key-0001"), false).await;
}

/// The default server (no keys, loopback): a page of another origin, in the same browser, can neither
/// register (no-cors fetch, HTML form), nor read, nor stream; the server's own page still does all,
/// and once it makes the first key, keyless requests are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_cannot_drive_the_default_server() {
    let server = Server::start(Db::Sqlite, &[]).await;
    let result = run_browser(&server, None, true).await;
    let attack = &result["attack"];
    assert_eq!(attack["noCorsSent"], true, "the request went out: {attack}");
    assert!(attack["read"].is_null(), "the list was read: {attack}");
    let ws: Vec<&str> = attack["ws"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        !ws.contains(&"open") && !ws.iter().any(|e| e.starts_with("message")),
        "the socket was accepted: {ws:?}"
    );
    // Keyless until the first key: the page made an admin key, and was refused without it.
    assert_eq!(result["keylessAfterFirstKey"], 401, "{result}");
    let admin = result["pageAdminKey"].as_str().unwrap();
    let (status, persons) = call(&server, reqwest::Method::GET, "/v1/persons", admin, None).await;
    assert_eq!(status, 200, "{persons}");
    let names: Vec<&str> = persons["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Yao Ming", "Page Registered"],
        "only the test and the server's own page registered anyone"
    );
}
