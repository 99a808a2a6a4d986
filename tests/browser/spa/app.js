// What the SPA does through CORS, one step after another; each step records what the
// browser let JavaScript read. A step can be inserted anywhere (see "pay" below).
const api = new URL(location.href).searchParams.get("api");
const journal = {};
const state = { email: `spa-${Date.now()}@example.com`, password: "correct-horse-42" };
window.journal = journal;

const READABLE = [
  "X-Request-ID", "Location", "ETag", "Retry-After", "Idempotent-Replayed",
  "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
];

async function call(name, method, path, { body, token, headers = {}, raw } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (raw !== undefined) {
    init.body = raw; // as sent without a Content-Type: fetch calls it text/plain
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(api + path, init);
  const text = await response.text();
  const seen = {};
  for (const header of READABLE) seen[header] = response.headers.get(header);
  journal[name] = { status: response.status, headers: seen, body: text ? JSON.parse(text) : null };
  document.getElementById("log").textContent += `${name}: ${response.status}\n`;
  return journal[name];
}

async function register() {
  const phone = `+9197${String(Date.now()).slice(-8)}`;
  await call("register", "POST", "/api/auth/register", {
    body: { email: state.email, password: state.password, full_name: "Spa Student", phone_number: phone },
  });
}

// The owner follows the verification mail: the test hands the page its token, read from the
// outbox (window.verificationToken, exposed by tests/test_browser.py). Verified accounts can pay.
async function verify() {
  const token = await window.verificationToken(state.email);
  await call("verify", "POST", "/api/auth/verify-email", { body: { token } });
}

async function login() {
  const answer = await call("login", "POST", "/api/auth/login", {
    body: { email: state.email, password: state.password },
  });
  state.token = answer.body.access_token;
}

async function chooseSubject() {
  const courses = await call("courses", "GET", "/api/courses");
  const course = await call("course", "GET", `/api/courses/${courses.body.items[0].id}`);
  state.subject = course.body.subjects[0];
}

async function sendTextPlain() {
  await call("text_plain", "POST", "/api/purchases", {
    token: state.token,
    raw: JSON.stringify({ purchase_type: "single_subject", subject_id: state.subject.id }),
  });
}

function purchase(name) {
  return call(name, "POST", "/api/purchases", {
    token: state.token,
    headers: { "Idempotency-Key": "spa-buy-1" },
    body: { purchase_type: "single_subject", subject_id: state.subject.id, cost: state.subject.price },
  });
}

async function buy() {
  const answer = await purchase("buy");
  state.purchase = answer.body.purchase;
}

// TODO(payments): pay in the sandbox here (POST /api/purchases/{id}/payment) once it exists.
async function pay() {}

async function retry() {
  await purchase("retry");
}

async function logout() {
  await call("logout", "POST", "/api/auth/logout", { token: state.token });
  await call("after_logout", "GET", "/api/auth/me", { token: state.token });
}

const steps = [register, verify, login, chooseSubject, sendTextPlain, buy, pay, retry, logout];

(async () => {
  try {
    for (const step of steps) await step();
    window.finished = "ok";
  } catch (error) {
    window.finished = `${error}`;
  }
})();
