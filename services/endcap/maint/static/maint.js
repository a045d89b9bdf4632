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

  function poll() {
    fetch("/api/update/status", { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then((r) => r.json())
      .then((st) => {
        if (!st.ok) { show(st.message, false); return; }
        bar.value = st.progress || 0;
        text.textContent = `${st.state} ${st.progress || 0} %`;
        document.body.dataset.updateState = st.state;
        if (st.message) show(st.message, st.state !== "failed");
        if (["installing", "verifying", "downloading", "checking"].includes(st.state)) setTimeout(poll, 500);
      })
      .catch(() => { show("The updater is not answering.", false); });
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = document.getElementById("bundle").files[0];
    if (!file) return;
    if (file.size > Number(form.dataset.limit)) { show(`The file is larger than the limit (${form.dataset.limit} bytes).`, false); return; }
    if (!window.confirm(`Install ${file.name}? The gateway reboots into it when it is installed.`)) return;
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
      if (body.ok) poll();
    };
    xhr.onerror = () => show("The upload was cut off.", false);
    xhr.send(file);
  });
})();
