import { ApiError, h, notice, session, signIn } from "./common.js";

const next = new URLSearchParams(location.search).get("next");
const target = next && /^\/console\/[a-z]+$/.test(next) ? next : "/console/keys";
if (session()) location.replace(target);

const form = document.getElementById("signin");
const message = document.getElementById("message");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const secret = form.secret.value.trim();
  if (!secret) {
    message.replaceChildren(notice("Enter an API key or the admin token.", "error"));
    return;
  }
  message.replaceChildren(h("p", { class: "muted" }, "Signing in…"));
  try {
    await signIn(secret);
    form.secret.value = "";
    location.assign(target);
  } catch (error) {
    const text = error instanceof ApiError && error.status === 401 ? "That key or token is not valid." : error.message;
    message.replaceChildren(notice(text, "error"));
  }
});
