// The air3d page: image -> POST /infer -> object list and markers -> POST /render.
"use strict";

const $ = (id) => document.getElementById(id);
const state = (name, text) => {
  document.body.dataset.state = name;
  $("status").textContent = text;
};

function headers() {
  const key = $("key").value || localStorage.getItem("air3d-key") || "";
  return key ? { "X-API-Key": key } : {};
}

function fmt(x) { return Number(x).toFixed(2); }

async function analyze(blob) {
  state("working", "Inferring the objects...");
  const input = $("input");
  if (input.src) URL.revokeObjectURL(input.src);
  input.src = URL.createObjectURL(blob);
  document.querySelectorAll(".marker").forEach((m) => m.remove());
  $("objects").replaceChildren();
  $("reconstruction").removeAttribute("src");
  const form = new FormData();
  form.append("image", blob, "image.png");
  const response = await fetch("/infer", { method: "POST", body: form, headers: headers() });
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status}: ${body.detail}`);
  showObjects(body);
  state("rendering", "Drawing the reconstruction...");
  const render = await fetch("/render", {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", ...headers() },
  });
  if (!render.ok) throw new Error(`render ${render.status}: ${(await render.json()).detail}`);
  $("reconstruction").src = URL.createObjectURL(await render.blob());
  state("done", `Found ${body.count} object${body.count === 1 ? "" : "s"} ` +
    `in ${fmt(body.timing_ms.total)} ms.`);
}

function showObjects(body) {
  const size = body.model.image_size;
  $("count").textContent = `(${body.count})`;
  $("model").textContent = `model ${body.model.name}, checkpoint ${body.model.checkpoint_hash}`;
  if (body.count === 0) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "no objects found";
    $("objects").append(li);
  }
  body.objects.forEach((obj, i) => {
    const li = document.createElement("li");
    li.className = "object";
    const [x, , z] = obj.position;
    li.textContent = `${obj.shape} at x=${fmt(x)}, z=${fmt(z)}, yaw ${fmt(obj.yaw_deg)}°, ` +
      `presence ${fmt(obj.presence)}, p(shape) ${fmt(obj.shape_probs[obj.shape])}`;
    $("objects").append(li);
    const marker = document.createElement("div");
    marker.className = "marker";
    marker.textContent = String(i + 1);
    marker.title = obj.shape;
    marker.style.left = `${(100 * obj.pixel[0]) / size}%`;
    marker.style.top = `${(100 * obj.pixel[1]) / size}%`;
    $("input-frame").append(marker);
  });
}

async function example(index) {
  const response = await fetch(`/static/examples/${index}.png`);
  if (!response.ok) throw new Error(`no example ${index}`);
  await analyze(await response.blob());
}

function run(promise) {
  promise.catch((error) => state("error", `Error: ${error.message}`));
}

$("file").addEventListener("change", (e) => e.target.files[0] && run(analyze(e.target.files[0])));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) run(analyze(e.dataTransfer.files[0]));
});
document.querySelectorAll("[data-example]").forEach((button) =>
  button.addEventListener("click", () => run(example(button.dataset.example))));
$("key").addEventListener("change", () => localStorage.setItem("air3d-key", $("key").value));

const params = new URLSearchParams(location.search);
if (params.has("example")) run(example(params.get("example")));  // /?example=0 runs one at once
