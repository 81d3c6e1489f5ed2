// facerec web page: persons, recognition of a photo (and naming an unknown face in it), the review
// of captured faces (strangers grouped, named or assigned; "not this person"; search by photo), live
// recognition over a WebSocket, the accuracy of the calibrated threshold, and (with an admin or
// operator key) the collection every view works in, its settings, and collections and keys.
"use strict";

const $ = (selector) => document.querySelector(selector);
const KEY = "facerec.apiKey";
// The collection chosen with the picker (its id), for keys that may choose (operator and admin).
const COLLECTION = "facerec.collection";

/// Says `text` in the status line of `view` (persons, recognize, review, live, accuracy, settings,
/// admin, key): each view has its own, so a message shows where it belongs.
function status(view, text, isError = false) {
  const el = $(`#${view}-status`);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function clearStatuses() {
  document.querySelectorAll(".status").forEach((el) => {
    el.textContent = "";
    el.classList.remove("error");
  });
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const collection = sessionStorage.getItem(COLLECTION);
  if (collection) headers["X-Facerec-Collection"] = collection;
  return headers;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = (body && body.error) || { code: String(response.status), message: response.statusText };
    const failure = new Error(`${error.code}: ${error.message}`);
    failure.code = error.code;
    throw failure;
  }
  return body;
}

/// A counter per kind of load: an answer that a newer load of the same kind has overtaken (the
/// collection changed, the search was typed on) is dropped, so no view shows another collection's data.
const loads = {};
const startLoad = (kind) => (loads[kind] = (loads[kind] || 0) + 1);
const isLatest = (kind, n) => loads[kind] === n;

const jsonBody = (value) => ({ headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const when = (time) => new Date(time).toLocaleString();
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

// ---- tabs and key -----------------------------------------------------------------------------------
document.querySelectorAll("nav button").forEach((button) =>
  button.addEventListener("click", () => showTab(button.dataset.tab)));

let currentTab = "persons";

function showTab(name) {
  const button = document.querySelector(`nav button[data-tab="${name}"]`);
  if (!button || button.hidden) name = "persons";
  currentTab = name;
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.id === name));
  if (name === "accuracy") loadAccuracy();
  if (name === "admin") loadAdmin();
  if (name === "settings") loadSettings();
  if (name === "review") loadReview();
}

$("#api-key").value = sessionStorage.getItem(KEY) || "";
$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("#api-key").value.trim());
  // Another key: the collection chosen with the last one may be none of this one's.
  sessionStorage.removeItem(COLLECTION);
  clearStatuses();
  status("key", "API key set for this tab.");
  await loadWhoami();
  reloadViews();
});

// ---- the key: its collection and scopes; the collection the page works in ----------------------------
const session = { me: null, canChoose: false };

async function loadWhoami() {
  let me;
  try {
    me = await api("/v1/me");
  } catch (error) {
    if (error.code === "collection_not_found" && sessionStorage.getItem(COLLECTION)) {
      // The chosen collection is gone (or this key cannot reach it): back to the key's own.
      sessionStorage.removeItem(COLLECTION);
      return loadWhoami();
    }
    session.me = null;
    session.canChoose = false;
    $("#whoami").textContent = "";
    $("#admin-tab").hidden = $("#settings-tab").hidden = $("#collection-picker").hidden = true;
    return;
  }
  session.me = me;
  // Operator keys (--api-keys) and keys with the admin scope reach every collection; others only their own.
  session.canChoose = me.scopes.includes("admin");
  if (!session.canChoose) sessionStorage.removeItem(COLLECTION);
  $("#whoami").textContent = `${me.collection.name} · ${me.scopes.join(", ")}`;
  $("#admin-tab").hidden = !session.canChoose;
  $("#settings-tab").hidden = !session.canChoose;
  await loadPicker();
}

/// The picker: every collection, the one in use selected. Shown only to keys that may choose.
async function loadPicker() {
  const picker = $("#collection-picker");
  if (!session.canChoose) {
    picker.hidden = true;
    return;
  }
  try {
    const collections = await api("/v1/collections");
    const select = $("#collection-select");
    select.replaceChildren(...collections.items.map((c) => {
      const option = document.createElement("option");
      option.value = c.id;
      option.textContent = c.name;
      return option;
    }));
    select.value = session.me.collection.id;
    picker.hidden = false;
  } catch (error) {
    picker.hidden = true;
    status("key", `Collections: ${error.message}`, true);
  }
}

async function chooseCollection(id) {
  if (id) sessionStorage.setItem(COLLECTION, id); else sessionStorage.removeItem(COLLECTION);
  clearStatuses();
  await loadWhoami();
  reloadViews();
}

$("#collection-select").addEventListener("change", (event) => chooseCollection(event.target.value));

/// Every view again, in the collection now in use.
function reloadViews() {
  $("#person-faces").textContent = "";
  loadPersons();
  const canvas = $("#recognize-canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  $("#recognize-list").replaceChildren();
  $("#recognize-file").value = "";
  recognized.file = null;
  recognized.faces = [];
  hideNameFace();
  // Review: another collection's strangers are not this one's.
  closeCluster();
  $("#review-clusters").replaceChildren();
  releaseChips("clusters");
  $("#review-capture-rows").replaceChildren();
  releaseChips("captures");
  $("#review-search-rows").replaceChildren();
  releaseChips("search");
  if (live.socket) {
    // A stream belongs to the collection its ticket was issued in: open a new one.
    stopLive();
    startLive();
  }
  showTab(currentTab);
}

// ---- persons ------------------------------------------------------------------------------------------
async function loadPersons() {
  const name = $("#person-search").value.trim();
  const n = startLoad("persons");
  try {
    const page = await api(`/v1/persons?limit=200${name ? `&name=${encodeURIComponent(name)}` : ""}`);
    if (!isLatest("persons", n)) return;
    const rows = $("#person-rows");
    rows.replaceChildren();
    for (const person of page.items) {
      const tr = document.createElement("tr");
      tr.dataset.personId = person.id;
      cell(tr, person.name).dataset.col = "name";
      cell(tr, person.external_id || "").dataset.col = "external_id";
      // `faces`: the number of the person's faces, where the server reports it.
      cell(tr, Number.isInteger(person.faces) ? String(person.faces) : "—").dataset.col = "faces";
      const consent = person.consent || {};
      const expires = cell(tr, consent.expired ? "expired"
        : consent.expires_at ? new Date(consent.expires_at).toLocaleString() : "—");
      expires.dataset.col = "consent_expires";
      if (consent.expires_at) expires.title = consent.expires_at;
      expires.classList.toggle("expired", consent.expired === true);
      cell(tr, new Date(person.created_at).toLocaleString()).dataset.col = "created_at";
      const actions = document.createElement("td");
      const faces = document.createElement("button");
      faces.textContent = "Faces";
      faces.addEventListener("click", () => showFaces(person));
      const remove = document.createElement("button");
      remove.textContent = "Delete";
      remove.addEventListener("click", () => deletePerson(person));
      actions.append(faces, " ", remove);
      tr.append(actions);
      rows.append(tr);
    }
    $("#person-count").textContent = `${page.total} registered`;
  } catch (error) {
    if (!isLatest("persons", n)) return;
    $("#person-rows").replaceChildren();
    $("#person-count").textContent = "";
    status("persons", error.message, true);
  }
}

async function showFaces(person) {
  try {
    const faces = await api(`/v1/persons/${person.id}/faces`);
    $("#person-faces").textContent = `${person.name}: ` + faces.items
      .map((f) => `face ${f.id.slice(0, 8)} (score ${f.det_score.toFixed(2)}, ${Math.round(f.quality.face_size_px)} px)`)
      .join(", ");
  } catch (error) {
    status("persons", error.message, true);
  }
}

async function deletePerson(person) {
  if (!confirm(`Delete ${person.name} and all their faces? This cannot be undone.`)) return;
  try {
    const deleted = await api(`/v1/persons/${person.id}`, { method: "DELETE" });
    status("persons", `Deleted ${deleted.person.name} and ${deleted.faces_deleted} face(s).`);
    loadPersons();
  } catch (error) {
    status("persons", error.message, true);
  }
}

$("#person-search").addEventListener("input", () => loadPersons());

$("#register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const data = new FormData();
  data.append("image", form.image.files[0]);
  data.append("name", form.name.value.trim());
  data.append("consent", form.consent.checked ? "true" : "false");
  if (form.external_id.value.trim()) data.append("external_id", form.external_id.value.trim());
  if (form.consent_basis.value.trim()) data.append("consent_basis", form.consent_basis.value.trim());
  try {
    const result = await api("/v1/register", { method: "POST", body: data });
    status("persons", `Registered ${result.person.name}.`);
    form.reset();
    loadPersons();
  } catch (error) {
    status("persons", error.message, true);
  }
});

// ---- drawing ------------------------------------------------------------------------------------------
function drawFaces(ctx, faces, scaleX = 1, scaleY = 1) {
  ctx.lineWidth = 3;
  ctx.font = "bold 16px system-ui, sans-serif";
  for (const face of faces) {
    const [x1, y1, x2, y2] = face.bbox;
    const known = face.match != null;
    const color = known ? "#1a7f37" : "#cf222e";
    const label = known ? `${face.match.name} ${face.match.similarity.toFixed(2)}` : "unknown";
    ctx.strokeStyle = color;
    ctx.strokeRect(x1 * scaleX, y1 * scaleY, (x2 - x1) * scaleX, (y2 - y1) * scaleY);
    const width = ctx.measureText(label).width + 8;
    ctx.fillStyle = color;
    ctx.fillRect(x1 * scaleX, Math.max(0, y1 * scaleY - 22), width, 22);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, x1 * scaleX + 4, Math.max(16, y1 * scaleY - 5));
  }
}

// ---- recognize a photo ----------------------------------------------------------------------------------
// The photo last recognized and the answer's faces: an unknown one can be named from here.
const recognized = { file: null, faces: [] };

/// What the list says of a face (its name and similarity, or unknown and how often seen).
function faceText(face) {
  if (face.registeredAs) return `${face.registeredAs} (just registered)`;
  if (face.match) return `${face.match.name} (${face.match.similarity.toFixed(2)})`;
  if (face.unknown) {
    return `unknown: seen ${plural(face.unknown.seen, "time")} since ${when(face.unknown.first_seen)}`;
  }
  return "unknown";
}

function showRecognized() {
  const list = $("#recognize-list");
  list.replaceChildren(...recognized.faces.map((face, index) => {
    const li = document.createElement("li");
    li.dataset.face = String(index);
    li.dataset.known = String(face.match != null);
    li.dataset.bbox = face.bbox.map((v) => Math.round(v)).join(",");
    const text = document.createElement("span");
    text.textContent = faceText(face);
    li.append(text);
    if (face.match == null && !face.registeredAs) {
      li.append(button("Name this person", () => showNameFace(index)));
    }
    return li;
  }));
}

$("#recognize-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  hideNameFace();
  if (!file) return;
  const data = new FormData();
  data.append("image", file);
  try {
    const result = await api("/v1/recognize", { method: "POST", body: data });
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const canvas = $("#recognize-canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    drawFaces(ctx, result.faces);
    recognized.file = file;
    recognized.faces = result.faces;
    showRecognized();
    const unknown = result.faces.filter((f) => f.match == null).length;
    status("recognize", `${result.faces.length} face(s); threshold ${result.threshold.toFixed(2)}.` +
      (unknown ? ` Click an unknown face (or "Name this person") to register it.` : ""));
  } catch (error) {
    status("recognize", error.message, true);
  }
});

// Clicking an unknown face's box offers to name it.
$("#recognize-canvas").addEventListener("click", (event) => {
  const canvas = event.currentTarget;
  const rect = canvas.getBoundingClientRect();
  if (!rect.width || !rect.height) return;
  const x = ((event.clientX - rect.left) * canvas.width) / rect.width;
  const y = ((event.clientY - rect.top) * canvas.height) / rect.height;
  const index = recognized.faces.findIndex((f) => f.match == null && !f.registeredAs &&
    x >= f.bbox[0] && x <= f.bbox[2] && y >= f.bbox[1] && y <= f.bbox[3]);
  if (index >= 0) showNameFace(index);
});

function showNameFace(index) {
  const face = recognized.faces[index];
  const form = $("#recognize-name-form");
  form.reset();
  form.dataset.face = String(index);
  $("#recognize-name-face").textContent = `face ${index + 1} of ${recognized.faces.length}`;
  $("#recognize-name-how").textContent = face.unknown
    ? `This stranger was seen ${plural(face.unknown.seen, "time")} since ${when(face.unknown.first_seen)}: ` +
      "their captured faces (the best of them) become the new person's faces."
    : "This face of the photo becomes the new person's face.";
  form.hidden = false;
  form.elements.name.focus();
}

function hideNameFace() {
  const form = $("#recognize-name-form");
  form.hidden = true;
  form.reset();
  delete form.dataset.face;
}

$("#recognize-name-cancel").addEventListener("click", hideNameFace);

/// Registers the unknown face `index` of the photo last recognized as `name`: with its cluster of
/// captured faces where the collection captures (the answer names it), else from the photo (the
/// face's index, in the order /v1/detect answers for the same photo). What happened, in words.
async function nameUnknownFace(index, name, basis) {
  const face = recognized.faces[index];
  const cluster = face.unknown && face.unknown.cluster_id;
  if (cluster) {
    // The answer names the cluster before its capture is written (off the answer's path): it
    // exists a moment later. One never written (the queue was full) or deleted since: the photo.
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        const named = await api(`/v1/clusters/${encodeURIComponent(cluster)}/name`,
          { method: "POST", ...jsonBody({ name, consent: true, consent_basis: basis }) });
        return `Registered ${named.person.name} from ${plural(named.captures.length, "captured face")} ` +
          `of this stranger (${plural(named.faces_added, "face")} added).`;
      } catch (error) {
        if (error.code !== "cluster_not_found") throw error;
        await sleep(500);
      }
    }
  }
  const data = new FormData();
  data.append("image", recognized.file);
  data.append("name", name);
  data.append("consent", "true");
  data.append("consent_basis", basis);
  data.append("face", String(index));
  const result = await api("/v1/register", { method: "POST", body: data });
  return `Registered ${result.person.name} from face ${index + 1} of this photo.`;
}

$("#recognize-name-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const index = Number(form.dataset.face);
  const face = recognized.faces[index];
  if (!face || !recognized.file) return;
  const name = form.elements.name.value.trim();
  const basis = form.elements.consent_basis.value.trim();
  if (!form.elements.consent.checked) {
    status("recognize", "Registering needs this person's explicit consent.", true);
    return;
  }
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const said = await nameUnknownFace(index, name, basis);
    face.registeredAs = name;
    hideNameFace();
    showRecognized();
    status("recognize", said);
    loadPersons();
  } catch (error) {
    status("recognize", error.message, true);
  } finally {
    submit.disabled = false;
  }
});

// ---- review: the faces captured in this collection -------------------------------------------------------
// Chips are fetched with the key (an <img src> could not send it) and shown from object URLs, one set
// per area of the view, revoked when that area is drawn again.
const chips = { urls: {}, generation: {} };

function releaseChips(area) {
  for (const url of chips.urls[area] || []) URL.revokeObjectURL(url);
  chips.urls[area] = [];
  chips.generation[area] = (chips.generation[area] || 0) + 1;
}

/// The chip of a capture (its aligned 112×112 face) as an <img> of `area`; a capture without one (named
/// for a person: its chip was deleted) as a placeholder.
function chipImage(area, capture) {
  if (capture.has_image === false) {
    const none = document.createElement("span");
    none.className = "chip missing";
    none.textContent = "no image";
    none.title = "Its chip was deleted when it was named: faces keep no pixels.";
    return none;
  }
  const id = typeof capture === "string" ? capture : capture.id;
  const img = document.createElement("img");
  img.className = "chip";
  img.alt = "captured face";
  img.dataset.captureId = id;
  const generation = chips.generation[area] || 0;
  fetch(`/v1/captures/${encodeURIComponent(id)}/image`, { headers: authHeaders(), cache: "no-store" })
    .then(async (response) => {
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        const error = (body && body.error) || { code: String(response.status), message: response.statusText };
        throw new Error(`${error.code}: ${error.message}`);
      }
      return response.blob();
    })
    .then((blob) => {
      // Drawn again meanwhile: this image is no longer shown.
      if ((chips.generation[area] || 0) !== generation) return;
      const url = URL.createObjectURL(blob);
      (chips.urls[area] = chips.urls[area] || []).push(url);
      img.src = url;
    })
    .catch((error) => {
      img.alt = "no image";
      img.title = error.message;
      img.classList.add("missing");
    });
  return img;
}

const review = { cluster: null };

function loadReview() {
  loadCaptureMode();
  loadClusters();
  loadCaptures();
}

/// Whether this collection captures at all: said when it does not (and where to turn it on).
async function loadCaptureMode() {
  const n = startLoad("capture-mode");
  try {
    const me = await api("/v1/me");
    if (!isLatest("capture-mode", n)) return;
    const collection = me.collection;
    const settings = collection.settings || {};
    const mode = settings.capture || "off";
    $("#review-capture-off").hidden = mode !== "off";
    $("#review-capture-off-text").textContent = `Capture is off in the collection ${collection.name}: ` +
      "no face recognized here is kept, so nothing new appears below. " +
      (session.canChoose
        ? "Turn it on in the Settings view (Capture: unknown or all)."
        : "A key with the admin scope turns it on in the Settings view (Capture: unknown or all).");
    $("#review-open-settings").hidden = !session.canChoose;
    const hours = settings.capture_retention_hours || 72;
    const max = settings.capture_max || 10000;
    $("#review-capture-mode").textContent = mode === "off" ? "" :
      `Capturing ${mode === "all" ? "every face recognized" : "faces nobody was named for"} in ${collection.name}; ` +
      `each kept ${plural(hours, "hour")}, ${max.toLocaleString("en")} at most.`;
  } catch (error) {
    if (isLatest("capture-mode", n)) status("review", error.message, true);
  }
}

$("#review-open-settings").addEventListener("click", () => showTab("settings"));
$("#review-reload").addEventListener("click", () => {
  status("review", "");
  loadReview();
  if (review.cluster) openCluster(review.cluster);
});

/// The clusters of strangers: the largest first, then the most recently seen (as the API answers).
async function loadClusters() {
  const n = startLoad("clusters");
  try {
    const list = await api("/v1/clusters?limit=50");
    if (!isLatest("clusters", n)) return;
    releaseChips("clusters");
    $("#review-clusters").replaceChildren(...list.items.map(clusterCard));
    $("#review-clusters-empty").hidden = list.items.length > 0;
    return list.items;
  } catch (error) {
    if (!isLatest("clusters", n)) return;
    releaseChips("clusters");
    $("#review-clusters").replaceChildren();
    $("#review-clusters-empty").hidden = true;
    status("review", error.message, true);
  }
}

function clusterCard(cluster) {
  const card = document.createElement("div");
  card.className = "cluster";
  card.dataset.clusterId = cluster.id;
  card.dataset.count = String(cluster.count);
  card.classList.toggle("open", review.cluster != null && review.cluster.id === cluster.id);
  const head = document.createElement("div");
  head.className = "cluster-head";
  const count = document.createElement("strong");
  count.className = "cluster-count";
  count.textContent = plural(cluster.count, "captured face");
  const meta = document.createElement("span");
  meta.className = "muted cluster-meta";
  meta.textContent = `seen ${plural(cluster.seen, "time")}; last ${when(cluster.last_seen)}; ` +
    `first ${when(cluster.first_seen)}; by ${cluster.sources.join(", ")}`;
  const open = button("Open", (event) => {
    event.stopPropagation();
    openCluster(cluster);
  });
  head.append(count, meta, open);
  const grid = document.createElement("div");
  grid.className = "chips";
  grid.append(...cluster.capture_ids.map((id) => chipImage("clusters", id)));
  card.append(head, grid);
  card.addEventListener("click", () => openCluster(cluster));
  return card;
}

/// One cluster, opened: its captures (to pick some), and what can be done with it.
async function openCluster(cluster) {
  const changed = !review.cluster || review.cluster.id !== cluster.id;
  review.cluster = cluster;
  document.querySelectorAll("#review-clusters .cluster")
    .forEach((el) => el.classList.toggle("open", el.dataset.clusterId === cluster.id));
  const panel = $("#review-cluster");
  panel.hidden = false;
  panel.dataset.clusterId = cluster.id;
  if (changed) {
    $("#review-name-form").reset();
    $("#review-assign-form").reset();
    $("#review-assign-results").replaceChildren();
  }
  $("#review-cluster-meta").textContent = `${plural(cluster.count, "captured face")}, seen ` +
    `${plural(cluster.seen, "time")} by ${cluster.sources.join(", ")}; first ${when(cluster.first_seen)}, ` +
    `last ${when(cluster.last_seen)}.`;
  const n = startLoad("cluster");
  try {
    const page = await api(`/v1/captures?cluster_id=${encodeURIComponent(cluster.id)}&limit=500`);
    if (!isLatest("cluster", n) || !review.cluster || review.cluster.id !== cluster.id) return;
    releaseChips("cluster");
    $("#review-cluster-captures").replaceChildren(...page.items.map(captureTile));
  } catch (error) {
    if (isLatest("cluster", n)) status("review", error.message, true);
  }
}

/// A capture of the open cluster: its chip, where and when it was seen, and a box to pick it.
function captureTile(capture) {
  const tile = document.createElement("label");
  tile.className = "pick";
  tile.dataset.captureId = capture.id;
  const pick = document.createElement("input");
  pick.type = "checkbox";
  pick.name = "capture";
  pick.value = capture.id;
  const caption = document.createElement("span");
  caption.textContent = `${capture.source} · ${when(capture.seen_at)}` +
    (capture.sightings > 1 ? ` (${capture.sightings}×)` : "");
  tile.append(chipImage("cluster", capture), caption, pick);
  return tile;
}

function closeCluster() {
  startLoad("cluster");
  review.cluster = null;
  const panel = $("#review-cluster");
  panel.hidden = true;
  delete panel.dataset.clusterId;
  releaseChips("cluster");
  $("#review-cluster-captures").replaceChildren();
  $("#review-assign-results").replaceChildren();
  $("#review-name-form").reset();
  $("#review-assign-form").reset();
  document.querySelectorAll("#review-clusters .cluster.open").forEach((el) => el.classList.remove("open"));
}

$("#review-cluster-close").addEventListener("click", closeCluster);

/// After a cluster changed: the lists again; the open cluster still open if it still exists.
async function afterClusterChange() {
  const open = review.cluster;
  const clusters = await loadClusters();
  const still = open && clusters && clusters.find((c) => c.id === open.id);
  if (still) openCluster(still); else closeCluster();
  loadCaptures();
  loadPersons();
}

$("#review-name-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const cluster = review.cluster;
  if (!cluster) return;
  const form = event.target;
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const named = await api(`/v1/clusters/${encodeURIComponent(cluster.id)}/name`, {
      method: "POST",
      ...jsonBody({
        name: form.elements.name.value.trim(),
        consent: form.elements.consent.checked,
        consent_basis: form.elements.consent_basis.value.trim(),
      }),
    });
    await afterClusterChange();
    status("review", `Named ${named.person.name}: ${plural(named.captures.length, "captured face")} ` +
      `named for them, ${plural(named.faces_added, "face")} added.`);
  } catch (error) {
    status("review", error.message, true);
  } finally {
    submit.disabled = false;
  }
});

// Assign to a registered person: find them by name, then give them the cluster or the faces picked.
$("#review-assign-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = event.target.elements.name.value.trim();
  const results = $("#review-assign-results");
  try {
    const page = await api(`/v1/persons?limit=20&name=${encodeURIComponent(name)}`);
    results.replaceChildren(...page.items.map((person) => {
      const li = document.createElement("li");
      li.dataset.personId = person.id;
      const who = document.createElement("span");
      who.textContent = Number.isInteger(person.faces)
        ? `${person.name} (${plural(person.faces, "face")})` : person.name;
      li.append(who,
        button("Give them this cluster", () => assignCluster(person)),
        button("Give them the faces picked", () => assignPicked(person)));
      return li;
    }));
    if (!page.items.length) status("review", `Nobody registered is named like "${name}".`, true);
    else status("review", "");
  } catch (error) {
    status("review", error.message, true);
  }
});

async function assignCluster(person) {
  const cluster = review.cluster;
  if (!cluster) return;
  try {
    const named = await api(`/v1/clusters/${encodeURIComponent(cluster.id)}/name`,
      { method: "POST", ...jsonBody({ person_id: person.id }) });
    await afterClusterChange();
    status("review", `Gave ${named.person.name} this cluster: ${plural(named.captures.length, "captured face")}, ` +
      `${plural(named.faces_added, "face")} added.`);
  } catch (error) {
    status("review", error.message, true);
  }
}

async function assignPicked(person) {
  const ids = [...document.querySelectorAll("#review-cluster-captures input[name=capture]:checked")].map((i) => i.value);
  if (!ids.length) {
    status("review", "Pick the faces to give first (the boxes under them).", true);
    return;
  }
  try {
    const assigned = await api("/v1/captures/assign",
      { method: "POST", ...jsonBody({ capture_ids: ids, person_id: person.id }) });
    await afterClusterChange();
    status("review", `Gave ${assigned.person.name} ${plural(assigned.captures.length, "captured face")}, ` +
      `${plural(assigned.faces_added, "face")} added.`);
  } catch (error) {
    status("review", error.message, true);
  }
}

$("#review-cluster-delete").addEventListener("click", async () => {
  const cluster = review.cluster;
  if (!cluster) return;
  if (!confirm(`Delete this stranger's ${plural(cluster.count, "captured face")} for good?`)) return;
  try {
    const deleted = await api(`/v1/clusters/${encodeURIComponent(cluster.id)}`, { method: "DELETE" });
    closeCluster();
    await afterClusterChange();
    status("review", `Deleted the cluster and its ${plural(deleted.captures_deleted, "captured face")}.`);
  } catch (error) {
    status("review", error.message, true);
  }
});

/// The names of the persons `ids` (a map; null for one gone meanwhile).
async function personNames(ids) {
  const unique = [...new Set(ids.filter(Boolean))];
  const named = await Promise.all(unique.map((id) =>
    api(`/v1/persons/${encodeURIComponent(id)}`).then((p) => [id, p.name], () => [id, null])));
  return new Map(named);
}

/// The captures recently named for a person (or marked "not this person"), newest first.
async function loadCaptures() {
  const which = $("#review-capture-status").value;
  const n = startLoad("captures");
  try {
    const page = await api(`/v1/captures?status=${encodeURIComponent(which)}&limit=50`);
    if (!isLatest("captures", n)) return;
    const names = await personNames(page.items.flatMap((c) => [c.person_id, c.rejected_person_id]));
    if (!isLatest("captures", n)) return;
    releaseChips("captures");
    $("#review-capture-rows").replaceChildren(...page.items.map((c) => captureRow(c, names)));
    $("#review-captures-empty").hidden = page.items.length > 0;
  } catch (error) {
    if (!isLatest("captures", n)) return;
    releaseChips("captures");
    $("#review-capture-rows").replaceChildren();
    status("review", error.message, true);
  }
}

$("#review-capture-status").addEventListener("change", () => loadCaptures());

const personLabel = (names, id) => (id ? names.get(id) || `a deleted person (${id.slice(0, 8)})` : "—");

function captureRow(capture, names) {
  const tr = document.createElement("tr");
  tr.dataset.captureId = capture.id;
  tr.dataset.status = capture.status;
  tr.dataset.hasImage = String(capture.has_image);
  const face = cell(tr, "");
  face.append(chipImage("captures", capture));
  const person = cell(tr, capture.status === "rejected"
    ? `not ${personLabel(names, capture.rejected_person_id)}` : personLabel(names, capture.person_id));
  person.dataset.col = "person";
  // A capture recognized as its person cleared the threshold; one below it (or with no candidate)
  // was named in review, and its similarity is to someone else.
  const recognizedAs = capture.similarity != null && capture.similarity >= capture.threshold;
  const similarity = cell(tr, capture.status === "known" && !recognizedAs ? "— (named in review)"
    : capture.similarity == null ? "—" : capture.similarity.toFixed(3));
  similarity.dataset.col = "similarity";
  if (capture.similarity != null) similarity.title = `best similarity ${capture.similarity.toFixed(3)}, threshold ${capture.threshold.toFixed(3)}`;
  cell(tr, capture.source).dataset.col = "source";
  const seen = cell(tr, when(capture.seen_at) + (capture.sightings > 1 ? ` (${capture.sightings}×)` : ""));
  seen.dataset.col = "seen";
  seen.title = capture.seen_at;
  const state = cell(tr, capture.status);
  state.dataset.col = "status";
  state.classList.toggle("rejected", capture.status === "rejected");
  const actions = cell(tr, "");
  if (capture.status === "known") {
    actions.append(button("Not this person", () => rejectCapture(capture, tr, names)), " ");
  }
  actions.append(button("Delete", () => deleteCapture(capture, tr)));
  return tr;
}

async function rejectCapture(capture, tr, names) {
  const who = personLabel(names, capture.person_id);
  try {
    const rejected = await api(`/v1/captures/${encodeURIComponent(capture.id)}/reject`, { method: "POST" });
    // Shown where it was, as it is now: rejected, back with the strangers.
    tr.dataset.status = rejected.status;
    const state = tr.querySelector("td[data-col=status]");
    state.textContent = rejected.status;
    state.classList.add("rejected");
    tr.querySelector("td[data-col=person]").textContent = `not ${who}`;
    for (const b of tr.querySelectorAll("button")) if (b.textContent === "Not this person") b.remove();
    status("review", `Not ${who}: while this capture is held, a face closer to it than to ${who}'s own faces ` +
      `is not named ${who}. It is back with the strangers.`);
    loadClusters();
  } catch (error) {
    status("review", error.message, true);
  }
}

async function deleteCapture(capture, tr) {
  if (!confirm("Delete this captured face for good?")) return;
  try {
    await api(`/v1/captures/${encodeURIComponent(capture.id)}`, { method: "DELETE" });
    tr.remove();
    status("review", "Deleted the captured face.");
    loadClusters();
  } catch (error) {
    status("review", error.message, true);
  }
}

// Search back in time: when and where the largest face of a photo was seen.
$("#review-search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = event.target.elements.image.files[0];
  if (!file) return;
  const data = new FormData();
  data.append("image", file);
  const n = startLoad("search");
  try {
    const found = await api("/v1/captures/search", { method: "POST", body: data });
    if (!isLatest("search", n)) return;
    const names = await personNames(found.items.flatMap((f) => [f.capture.person_id, f.capture.rejected_person_id]));
    if (!isLatest("search", n)) return;
    releaseChips("search");
    $("#review-search-rows").replaceChildren(...found.items.map(({ capture, similarity }) => {
      const tr = document.createElement("tr");
      tr.dataset.captureId = capture.id;
      cell(tr, "").append(chipImage("search", capture));
      const seen = cell(tr, when(capture.seen_at));
      seen.dataset.col = "seen";
      seen.title = capture.seen_at;
      cell(tr, capture.source).dataset.col = "source";
      cell(tr, similarity.toFixed(3)).dataset.col = "similarity";
      const decision = capture.status === "known" ? personLabel(names, capture.person_id)
        : capture.status === "rejected" ? `not ${personLabel(names, capture.rejected_person_id)}` : "a stranger";
      cell(tr, decision).dataset.col = "decision";
      return tr;
    }));
    status("review", found.items.length
      ? `Seen ${plural(found.items.length, "time")} within the captures held (most similar first).`
      : "Not seen within the captures held.");
  } catch (error) {
    if (isLatest("search", n)) status("review", error.message, true);
  }
});

// ---- live -------------------------------------------------------------------------------------------------
const live = { socket: null, stream: null, sentAt: new Map(), timer: null, answers: [], lastNames: "" };

async function startLive() {
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    status("live", `Camera unavailable: ${error.message}`, true);
    return;
  }
  const video = $("#live-video");
  video.srcObject = live.stream;
  await video.play();
  let query = "";
  try {
    const { ticket } = await api("/v1/stream/ticket", { method: "POST" });
    query = `?ticket=${encodeURIComponent(ticket)}`;
  } catch (error) {
    live.stream.getTracks().forEach((t) => t.stop());
    status("live", error.message, true);
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/stream${query}`);
  socket.binaryType = "arraybuffer";
  live.socket = socket;
  socket.onmessage = (event) => onLiveMessage(JSON.parse(event.data));
  // A socket replaced by a newer one (the collection changed) stops nothing when it closes.
  socket.onclose = (event) => {
    if (live.socket !== socket) return;
    if (event.code === 1008 && event.reason) status("live", `Stream closed: ${event.reason}`, true);
    stopLive();
  };
  socket.onopen = () => {
    status("live", `Live: streaming frames (collection ${session.me ? session.me.collection.name : "of this key"}).`);
    $("#live-start").disabled = true;
    $("#live-stop").disabled = false;
    const grab = document.createElement("canvas");
    let frame = 0;
    let inFlight = 0;
    // About 15 frames per second; at most two frames on the wire (the server keeps only the newest).
    live.timer = setInterval(() => {
      if (socket.readyState !== WebSocket.OPEN || inFlight >= 2 || !video.videoWidth) return;
      grab.width = video.videoWidth;
      grab.height = video.videoHeight;
      grab.getContext("2d").drawImage(video, 0, 0);
      inFlight += 1;
      grab.toBlob((blob) => {
        frame += 1;
        live.sentAt.set(frame, performance.now());
        blob.arrayBuffer().then((buffer) => socket.send(buffer));
      }, "image/jpeg", 0.8);
    }, 66);
    live.release = () => { inFlight = Math.max(0, inFlight - 1); };
  };
}

function onLiveMessage(message) {
  if (live.release) live.release();
  if (message.error) {
    status("live", `Frame ${message.frame ?? "?"}: ${message.error.code}: ${message.error.message}`, true);
    return;
  }
  const now = performance.now();
  const sent = live.sentAt.get(message.frame);
  for (const key of live.sentAt.keys()) if (key <= message.frame) live.sentAt.delete(key);
  live.answers.push(now);
  live.answers = live.answers.filter((t) => now - t < 2000);
  const video = $("#live-video");
  const overlay = $("#live-overlay");
  overlay.width = video.videoWidth;
  overlay.height = video.videoHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  drawFaces(ctx, message.faces);
  const fps = live.answers.length / 2;
  const latency = sent ? Math.round(now - sent) : "?";
  $("#live-stats").textContent =
    `${fps.toFixed(1)} fps · ${latency} ms round trip · ${message.took_ms.toFixed(0)} ms on the server · ${message.skipped} skipped`;
  const names = message.faces.map((f) => (f.match ? f.match.name : "unknown")).join(", ") || "nobody";
  $("#live-names").textContent = names;
  if (names !== live.lastNames) {
    live.lastNames = names;
    console.log(`facerec-live names: ${names}`);
  }
}

function stopLive() {
  clearInterval(live.timer);
  const socket = live.socket;
  live.socket = null;
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close();
  if (live.stream) live.stream.getTracks().forEach((t) => t.stop());
  live.stream = null;
  live.release = null;
  $("#live-start").disabled = false;
  $("#live-stop").disabled = true;
}

$("#live-start").addEventListener("click", startLive);
$("#live-stop").addEventListener("click", stopLive);

// ---- accuracy: the calibrated threshold, drawn -----------------------------------------------------------
async function loadAccuracy(recalibrate = false) {
  const n = startLoad("accuracy");
  try {
    const calibration = await api("/v1/calibration", recalibrate ? { method: "POST" } : {});
    if (!isLatest("accuracy", n)) return;
    showAccuracy(calibration);
    if (recalibrate) status("accuracy", "Recalibrated.");
  } catch (error) {
    if (isLatest("accuracy", n)) status("accuracy", error.message, true);
  }
}

const percent = (share) => `${(share * 100).toFixed(share < 0.01 ? 2 : 1)}%`;

/// One sentence in plain words, from the 95% upper bound (what the threshold was chosen by).
function accuracySentence(c) {
  const threshold = c.effective_threshold.toFixed(3);
  if (c.weak) {
    return `With ${c.persons} persons registered, the estimate is weak: too few to show that at most ` +
      `${percent(c.target_fpir)} of strangers would be named at any threshold; the threshold in force is ${threshold}.`;
  }
  const oneIn = Math.max(1, Math.round(1 / Math.max(c.estimated_fpir_upper, 1e-9)));
  return `At this gallery size (${c.persons} persons), at most about 1 stranger in ${oneIn.toLocaleString("en")} ` +
    `would be named (threshold ${threshold}).`;
}

const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

/// The error rates at the threshold in force: strangers named (the estimate and its 95% upper
/// bound) and registered people missed (`estimated_fnir`, where the server reports it), with a
/// warning when the miss rate is past the server's warning level.
function showRates(c) {
  const parts = [];
  const threshold = isNumber(c.effective_threshold) ? c.effective_threshold.toFixed(3) : "?";
  if (c.stranger_persons === 0 && c.person_pairs === 0) {
    // Nobody to measure yet: an estimate of 100% would only say that nothing is known.
    parts.push(`At threshold ${threshold}: strangers named: not measured (too few persons)`);
  } else if (isNumber(c.estimated_fpir)) {
    parts.push(`At threshold ${threshold}: strangers named ${percent(c.estimated_fpir)}` +
      (isNumber(c.estimated_fpir_upper) ? ` (95% upper bound ${percent(c.estimated_fpir_upper)})` : ""));
  }
  if (isNumber(c.estimated_fnir)) {
    parts.push(`registered people missed ${percent(c.estimated_fnir)}`);
  } else if (c.estimated_fnir === null) {
    parts.push("registered people missed: not measured (no person has two or more photos)");
  }
  if (isNumber(c.observed_false_matches) && c.observed_false_matches > 0) {
    parts.push(`reviewers said "not this person" to ${c.observed_false_matches} match${c.observed_false_matches === 1 ? "" : "es"} still held`);
  }
  $("#accuracy-rates").textContent = parts.length ? `${parts.join("; ")}.` : "";
  const warning = $("#accuracy-fnir-warning");
  const warn = isNumber(c.estimated_fnir) &&
    (c.fnir_warning === true || (isNumber(c.fnir_warning_level) && c.estimated_fnir > c.fnir_warning_level));
  warning.hidden = !warn;
  const level = isNumber(c.fnir_warning_level) ? ` (more than ${percent(c.fnir_warning_level)})` : "";
  warning.textContent = warn
    ? `Warning: at this threshold about ${percent(c.estimated_fnir)} of registered people's photos are not recognized${level}. ` +
      "Register clearer photos, or lower the threshold floor or raise the target FPIR in the collection's settings."
    : "";
}

function showAccuracy(c) {
  $("#accuracy-sentence").textContent = accuracySentence(c);
  showRates(c);
  $("#accuracy-details").textContent =
    `Target ${percent(c.target_fpir)} of strangers; floor ${c.floor_threshold.toFixed(3)}; ${c.method} estimate from ` +
    `${c.persons_sampled} sampled persons (${c.stranger_probes} stranger probes, ${c.genuine_probes} genuine, ` +
    `${c.impostor_pairs} pairs); computed ${new Date(c.computed_at).toLocaleString()}.`;
  drawHistograms($("#accuracy-histograms"), c);
  drawCurve($("#accuracy-curve"), c);
}

const LOW = -0.2, HIGH = 1.0; // the score range drawn

function axes(ctx, width, height, pad) {
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = "#d9dee3";
  ctx.fillStyle = "#68727d";
  ctx.font = "11px system-ui, sans-serif";
  ctx.beginPath();
  ctx.moveTo(pad, height - pad);
  ctx.lineTo(width - 16, height - pad);
  ctx.stroke();
  for (let s = 0; s <= HIGH + 1e-9; s += 0.2) {
    const x = pad + ((s - LOW) / (HIGH - LOW)) * (width - pad - 16);
    ctx.fillText(s.toFixed(1), x - 8, height - pad + 14);
  }
  return (score) => pad + ((score - LOW) / (HIGH - LOW)) * (width - pad - 16);
}

function thresholdLine(ctx, x, height, pad, threshold) {
  ctx.strokeStyle = "#1d232a";
  ctx.setLineDash([]);
  ctx.beginPath();
  ctx.moveTo(x, 4);
  ctx.lineTo(x, height - pad);
  ctx.stroke();
  ctx.fillStyle = "#1d232a";
  ctx.fillText(`threshold ${threshold.toFixed(3)}`, x + 4, 14);
}

function drawHistograms(canvas, c) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = 28;
  const x = axes(ctx, width, height, pad);
  const bins = c.histograms.bins;
  for (const [counts, color] of [[c.histograms.stranger, "rgba(207,34,46,.55)"], [c.histograms.genuine, "rgba(26,127,55,.55)"]]) {
    const top = Math.max(1, ...counts);
    ctx.fillStyle = color;
    counts.forEach((count, i) => {
      const from = -1 + (2 * i) / bins, to = -1 + (2 * (i + 1)) / bins;
      if (to <= LOW || !count) return;
      const h = (count / top) * (height - pad - 24);
      ctx.fillRect(x(Math.max(from, LOW)), height - pad - h, x(to) - x(Math.max(from, LOW)) - 1, h);
    });
  }
  thresholdLine(ctx, x(c.effective_threshold), height, pad, c.effective_threshold);
}

function drawCurve(canvas, c) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = 28;
  const x = axes(ctx, width, height, pad);
  const y = (share) => height - pad - share * (height - pad - 24);
  ctx.fillStyle = "#68727d";
  ctx.fillText("100%", 0, y(1) + 4);
  ctx.fillText("0%", 8, y(0));
  const line = (key, color, dash) => {
    ctx.strokeStyle = color;
    ctx.setLineDash(dash);
    ctx.beginPath();
    c.curve.filter((p) => p[key] !== null).forEach((p, i) => {
      const at = [x(p.threshold), y(p[key])];
      if (i === 0) ctx.moveTo(...at); else ctx.lineTo(...at);
    });
    ctx.stroke();
  };
  line("fpir", "#cf222e", []);
  line("fpir_upper", "#cf222e", [4, 3]);
  line("fnir", "#1f6feb", []);
  ctx.setLineDash([]);
  thresholdLine(ctx, x(c.effective_threshold), height, pad, c.effective_threshold);
}

$("#accuracy-recalibrate").addEventListener("click", () => loadAccuracy(true));

// ---- collections and keys (an admin key) ---------------------------------------------------------------
function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = text;
  tr.append(td);
  return td;
}

function button(text, onClick) {
  const b = document.createElement("button");
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

async function loadAdmin() {
  try {
    const [collections, keys] = await Promise.all([api("/v1/collections"), api("/v1/keys")]);
    const chosen = session.me ? session.me.collection.id : null;
    const names = new Map(collections.items.map((c) => [c.id, c.name]));
    const rows = $("#collection-rows");
    rows.replaceChildren();
    const select = $("#key-collection");
    select.replaceChildren();
    for (const c of collections.items) {
      const tr = document.createElement("tr");
      tr.dataset.collection = c.name;
      cell(tr, c.name);
      cell(tr, new Date(c.created_at).toLocaleString());
      const actions = cell(tr, "");
      if (c.name !== "default") actions.append(button("Delete", () => deleteCollection(c)), " ");
      actions.append(button("Settings", async () => {
        if (c.id !== chosen) await chooseCollection(c.id);
        showTab("settings");
      }));
      rows.append(tr);
      const option = document.createElement("option");
      option.value = option.textContent = c.name;
      option.selected = c.id === chosen;
      select.append(option);
    }
    const keyRows = $("#key-rows");
    keyRows.replaceChildren();
    for (const k of keys.items) {
      const tr = document.createElement("tr");
      tr.dataset.keyId = k.id;
      cell(tr, k.label);
      cell(tr, names.get(k.collection_id) || k.collection_id);
      cell(tr, k.scopes.join(", "));
      cell(tr, k.last_used_at ? new Date(k.last_used_at).toLocaleString() : "never");
      const live = !k.revoked_at && (!k.expires_at || new Date(k.expires_at) > new Date());
      cell(tr, k.revoked_at ? "revoked" : live ? "live" : "expired");
      const actions = cell(tr, "");
      if (!k.revoked_at) actions.append(button("Revoke", () => revokeKey(k)));
      keyRows.append(tr);
    }
  } catch (error) {
    status("admin", error.message, true);
  }
}

async function deleteCollection(c) {
  if (!confirm(`Delete the collection ${c.name} with every person, face and key in it, for good?`)) return;
  try {
    const deleted = await api(`/v1/collections/${c.id}`, { method: "DELETE" });
    if (session.me && session.me.collection.id === c.id) {
      // The page worked in it: back to the key's own collection, every view with it.
      sessionStorage.removeItem(COLLECTION);
      await loadWhoami();
      reloadViews();
    } else {
      await loadPicker();
      await loadAdmin();
    }
    // Said once the list no longer shows it.
    status("admin", `Deleted ${c.name}: ${deleted.persons_deleted} persons, ${deleted.faces_deleted} faces, ${deleted.keys_deleted} keys.`);
  } catch (error) {
    status("admin", error.message, true);
  }
}

async function revokeKey(k) {
  try {
    await api(`/v1/keys/${k.id}`, { method: "DELETE" });
    await loadAdmin();
    status("admin", `Revoked ${k.label}.`);
  } catch (error) {
    status("admin", error.message, true);
  }
}

$("#collection-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = event.target.name.value.trim();
  try {
    await api("/v1/collections", { method: "POST", ...jsonBody({ name }) });
    status("admin", `Created collection ${name}.`);
    event.target.reset();
    await loadPicker();
    loadAdmin();
  } catch (error) {
    status("admin", error.message, true);
  }
});

$("#key-create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((i) => i.value);
  try {
    const created = await api("/v1/keys", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ collection: form.collection.value, scopes, label: form.label.value.trim() }),
    });
    $("#new-key").textContent = created.key;
    $("#new-key-box").hidden = false;
    status("admin", `Created key ${created.label} for ${created.collection}: copy it now, it is not shown again.`);
    form.label.value = "";
    loadAdmin();
  } catch (error) {
    status("admin", error.message, true);
  }
});

$("#new-key-copy").addEventListener("click", async () => {
  const secret = $("#new-key").textContent;
  try {
    await navigator.clipboard.writeText(secret);
    status("admin", "Copied the key.");
  } catch (error) {
    // Without clipboard access: select it for the person to copy.
    getSelection().selectAllChildren($("#new-key"));
    status("admin", "Select and copy the key (the clipboard is not available here).", true);
  }
});

// ---- the chosen collection's settings (an admin key) ---------------------------------------------------
// The settings this form edits: numbers, and choices (a <select>); any other the collection holds (a
// newer server's) is sent back as it was, since PATCH /v1/collections/{id} replaces every setting.
const SETTINGS = ["match_threshold", "target_fpir", "retention_days", "max_streams", "capture_retention_hours", "capture_max"];
const CHOICES = ["capture"];
const settingsState = { collection: null };

function fillSettings(collection) {
  settingsState.collection = collection;
  const form = $("#settings-form");
  $("#settings-name").textContent = collection.name;
  for (const name of SETTINGS) {
    const value = collection.settings ? collection.settings[name] : undefined;
    form.elements[name].value = value === undefined || value === null ? "" : String(value);
  }
  for (const name of CHOICES) {
    const value = collection.settings ? collection.settings[name] : undefined;
    const text = value === undefined || value === null ? "" : String(value);
    const select = form.elements[name];
    // A choice this page does not know (a newer server's) is shown, and kept, as it is.
    if (![...select.options].some((o) => o.value === text)) {
      const option = document.createElement("option");
      option.value = option.textContent = text;
      select.append(option);
    }
    select.value = text;
  }
  const others = Object.keys(collection.settings || {}).filter((k) => !SETTINGS.includes(k) && !CHOICES.includes(k));
  $("#settings-meta").textContent = `Collection ${collection.id}; last changed ${new Date(collection.updated_at).toLocaleString()}.` +
    (others.length ? ` Also set, kept as they are: ${others.join(", ")}.` : "");
}

async function loadSettings() {
  if (!session.me) return;
  const n = startLoad("settings");
  try {
    const collection = await api(`/v1/collections/${encodeURIComponent(session.me.collection.id)}`);
    if (isLatest("settings", n)) fillSettings(collection);
  } catch (error) {
    if (isLatest("settings", n)) status("settings", error.message, true);
  }
}

$("#settings-reload").addEventListener("click", () => {
  status("settings", "");
  loadSettings();
});

$("#settings-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const collection = settingsState.collection;
  if (!collection) return;
  const form = event.target;
  const settings = { ...(collection.settings || {}) };
  for (const name of SETTINGS) {
    const input = form.elements[name];
    const text = input.value.trim();
    if (input.validity.badInput) {
      status("settings", `${input.parentElement.firstChild.textContent.trim()}: not a number.`, true);
      input.focus();
      return;
    }
    // Blank: unset, the server's own setting applies.
    if (text === "") delete settings[name]; else settings[name] = Number(text);
  }
  for (const name of CHOICES) {
    const value = form.elements[name].value;
    if (value === "") delete settings[name]; else settings[name] = value;
  }
  try {
    const updated = await api(`/v1/collections/${encodeURIComponent(collection.id)}`,
      { method: "PATCH", ...jsonBody({ settings }) });
    fillSettings(updated);
    // The page's own idea of its collection (the Review view says whether it captures).
    if (session.me && session.me.collection.id === updated.id) session.me.collection = updated;
    status("settings", `Saved the settings of ${updated.name}.`);
  } catch (error) {
    status("settings", error.message, true);
  }
});

// ---- start ----------------------------------------------------------------------------------------------
(async () => {
  await loadWhoami();
  const params = new URLSearchParams(location.search);
  loadPersons();
  if (params.get("tab")) showTab(params.get("tab"));
  if (params.get("autostart") === "live") {
    showTab("live");
    startLive();
  }
})();
