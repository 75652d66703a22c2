// The page of `cyclegan serve`: pick or drop an image, choose a direction, translate, download.
// Plain JavaScript talking to the same server's API (GET /info, POST /translate); nothing external.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("translate-form");
const fileInput = $("file-input");
const dropZone = $("drop-zone");
const button = $("translate-button");
const statusLine = $("status");
const inputImage = $("input-image");
const outputImage = $("output-image");
const downloadLink = $("download-link");

const DIRECTION_LABELS = { AtoB: "A → B", BtoA: "B → A" };
let service = null;       // what GET /info said
let chosenFile = null;    // the File to translate
let inputUrl = null;      // object URLs, released when replaced
let outputUrl = null;

function showStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
  statusLine.setAttribute("role", isError ? "alert" : "status");
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

function updateButton() {
  button.disabled = !(service && chosenFile);
}

async function loadInfo() {
  try {
    const response = await fetch("/info");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    service = await response.json();
  } catch (error) {
    $("model-info").textContent = `The server did not describe its model (${error.message}); reload the page.`;
    return;
  }
  const names = Object.keys(service.directions);
  $("model-info").textContent =
    `Model: ${service.architecture}, ngf ${service.ngf}, from ${service.checkpoint} on ${service.device}. ` +
    `Images up to ${formatBytes(service.limits.max_upload_bytes)} and ` +
    `${(service.limits.max_pixels / 1e6).toFixed(1)} megapixels.`;
  const fieldset = $("directions");
  for (const name of names) {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "direction";
    radio.value = name;
    radio.checked = name === service.default_direction;
    const channels = service.directions[name];
    label.title = `${channels.input_channels} → ${channels.output_channels} channels`;
    label.append(radio, ` ${DIRECTION_LABELS[name] || name}`);
    fieldset.append(label);
  }
  updateButton();
}

function chooseFile(file) {
  if (!file) return;
  if (service && file.size > service.limits.max_upload_bytes) {
    showStatus(`${file.name} is ${formatBytes(file.size)}, over this server's limit of ` +
               `${formatBytes(service.limits.max_upload_bytes)}.`, true);
    return;
  }
  chosenFile = file;
  $("file-name").textContent = `${file.name} (${formatBytes(file.size)})`;
  if (inputUrl) URL.revokeObjectURL(inputUrl);
  inputUrl = URL.createObjectURL(file);
  inputImage.hidden = false;
  inputImage.src = inputUrl;
  $("input-size").textContent = "";
  clearResult();
  showStatus("Ready: choose the direction and press Translate.");
  updateButton();
}

function clearResult() {
  if (outputUrl) URL.revokeObjectURL(outputUrl);
  outputUrl = null;
  outputImage.hidden = true;
  outputImage.removeAttribute("src");
  downloadLink.hidden = true;
  $("output-size").textContent = "";
}

inputImage.addEventListener("load", () => {
  $("input-size").textContent = `${inputImage.naturalWidth} × ${inputImage.naturalHeight} px`;
});
inputImage.addEventListener("error", () => {
  inputImage.hidden = true;
  $("input-size").textContent = "This browser cannot preview the file; the server may still translate it.";
});
outputImage.addEventListener("load", () => {
  $("output-size").textContent = `${outputImage.naturalWidth} × ${outputImage.naturalHeight} px`;
});

fileInput.addEventListener("change", () => chooseFile(fileInput.files[0]));

for (const type of ["dragenter", "dragover"]) {
  dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  dropZone.addEventListener(type, () => dropZone.classList.remove("dragging"));
}
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  const files = event.dataTransfer && event.dataTransfer.files;
  if (files && files.length) chooseFile(files[0]);
});
// A file dropped next to the drop zone must not make the browser navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

// 16-bit and float TIFF uploads come back as TIFF, everything else as PNG.
function downloadName(fileName, direction, mediaType) {
  const stem = fileName.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._-]+/g, "_") || "image";
  return `${stem}_${direction}${mediaType === "image/tiff" ? ".tif" : ".png"}`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosenFile) return;
  const checked = form.querySelector("input[name=direction]:checked");
  const direction = checked ? checked.value : service.default_direction;
  const body = new FormData();
  body.append("image", chosenFile, chosenFile.name);
  body.append("direction", direction);
  button.disabled = true;
  clearResult();
  showStatus(`Translating ${chosenFile.name} (${DIRECTION_LABELS[direction] || direction})…`);
  const started = performance.now();
  try {
    const response = await fetch("/translate", { method: "POST", body });
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
      showStatus(`Not translated: ${message}`, true);
      return;
    }
    const blob = await response.blob();
    outputUrl = URL.createObjectURL(blob);
    outputImage.src = outputUrl;
    outputImage.hidden = false;
    downloadLink.href = outputUrl;
    downloadLink.download = downloadName(chosenFile.name, direction, blob.type);
    downloadLink.hidden = false;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    showStatus(`Done in ${seconds} s.`);
  } catch (error) {
    showStatus(`Not translated: the server could not be reached (${error.message}).`, true);
  } finally {
    updateButton();
  }
});

loadInfo();
