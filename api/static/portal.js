// Citizen portal: suspend, resume or revoke a certificate, withdraw a consent, log out.
(function () {
  "use strict";
  const root = document.getElementById("portal");
  const msg = (name) => (root && root.dataset["msg" + name.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())]) || name;
  const status = document.getElementById("portal-status");
  // After a change the page is rendered again; the message survives the reload for the live region.
  const KEY = "eid-portal-status";
  if (status && sessionStorage.getItem(KEY)) {
    const text = sessionStorage.getItem(KEY);
    sessionStorage.removeItem(KEY);
    setTimeout(() => { status.textContent = text; }, 100);
  }
  const call = async (method, url, button) => {
    button.disabled = true;
    try {
      const answer = await fetch(url, {method: method, credentials: "same-origin"});
      if (answer.ok) {
        sessionStorage.setItem(KEY, msg("done"));
        window.location.reload();
        return;
      }
      let detail = "";
      try { detail = (await answer.json()).detail || ""; } catch (e) { detail = ""; }
      status.textContent = msg("failed") + (detail ? " (" + detail + ")" : "");
    } catch (e) {
      status.textContent = msg("failed");
    }
    button.disabled = false;
  };
  document.querySelectorAll("[data-cert-action]").forEach((button) => {
    button.addEventListener("click", () => {
      const action = button.dataset.certAction;
      if (action === "revoke" && !window.confirm(msg("confirm-revoke"))) return;
      call("POST", "/api/v1/me/certificates/" + encodeURIComponent(button.dataset.serial) + "/" + action, button);
    });
  });
  document.querySelectorAll("[data-withdraw]").forEach((button) => {
    button.addEventListener("click", () => {
      if (!window.confirm(msg("confirm-withdraw"))) return;
      call("DELETE", "/api/v1/me/consents/" + encodeURIComponent(button.dataset.withdraw), button);
    });
  });
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await fetch("/api/v1/auth/logout", {method: "POST", credentials: "same-origin"});
      window.location.assign("/");
    });
  }
})();
