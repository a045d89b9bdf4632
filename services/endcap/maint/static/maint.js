// Endcap maintenance page: confirmation dialogs and the bundle upload with progress. No inline script (CSP).
"use strict";
(function () {
  const csrf = () => document.body.dataset.csrf || "";

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  });

  const form = document.getElementById("upload-form");
  if (!form) return;
  const bar = document.getElementById("progress");
  const text = document.getElementById("progress-text");
  const result = document.getElementById("upload-result");
  const show = (msg, ok) => { result.textContent = msg; result.className = ok ? "ok" : "bad"; };

  const BUSY = ["checking", "downloading", "verifying", "installing"];

  // The updater's status is the only source of progress and of the final result (a refusal's reason
  // arrives there, in its message and history): poll until it is no longer busy.
  function poll() {
    fetch("/api/update/status", { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then((r) => r.json())
      .then((st) => {
        if (!st.ok) { show(st.message, false); return; }
        bar.value = st.progress || 0;
        text.textContent = `${st.state} ${st.progress || 0} %`;
        document.body.dataset.updateState = st.state;
        if (BUSY.includes(st.state)) {
          if (st.message) show(st.message, true);
          setTimeout(poll, 500);
        } else if (st.state === "failed") {
          show(`${st.last_result || "failed"}: ${st.message}`, false);
        } else if (st.message) {
          show(st.message, true);
        }
      })
      .catch(() => { show("The updater is not answering.", false); });
  }

  function send(file) {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/update/upload");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.setRequestHeader("X-Requested-With", "fetch");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) { bar.value = Math.round((100 * e.loaded) / e.total); text.textContent = `uploading ${bar.value} %`; }
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { message: `HTTP ${xhr.status}` }; }
      if (body.reauth) { window.location = "/reauth?next=/update"; return; }
      document.body.dataset.upload = body.ok ? "accepted" : "refused";
      show(body.message || (body.ok ? "Accepted." : "Refused."), !!body.ok);
      poll();
    };
    xhr.onerror = () => show("The upload was cut off.", false);
    xhr.send(file);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = document.getElementById("bundle").files[0];
    if (!file) return;
    if (file.size > Number(form.dataset.limit)) { show(`The file is larger than the limit (${form.dataset.limit} bytes).`, false); return; }
    if (!window.confirm(`Install ${file.name}? The gateway reboots into it when it is installed.`)) return;
    delete document.body.dataset.upload;
    // ask first (password fresh, updater free), so a large file is not sent only to be refused
    fetch("/api/update/ready", { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then((r) => r.json())
      .then((ready) => {
        if (ready.reauth) { window.location = "/reauth?next=/update"; return; }
        if (!ready.ok) { document.body.dataset.upload = "refused"; show(ready.message, false); return; }
        send(file);
      })
      .catch(() => show("The gateway is not answering.", false));
  });
})();
