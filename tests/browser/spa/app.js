// What the SPA does through CORS, one small step after another; each step records what the
// browser let JavaScript read, and `window.step` names the step running (or the one that
// failed). A step can be inserted anywhere in `steps` below; it reads and writes `state`.
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

function expect(answer, status) {
  if (answer.status !== status) throw new Error(`expected ${status}, got ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body;
}

async function register() {
  const phone = `+9197${String(Date.now()).slice(-8)}`;
  const answer = await call("register", "POST", "/api/auth/register", {
    body: { email: state.email, password: state.password, full_name: "Spa Student", phone_number: phone },
  });
  expect(answer, 201);
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
  state.token = expect(answer, 200).access_token;
}

// (An email-verification step, when the API asks for one before paying, goes here.)

async function chooseSubject() {
  const courses = expect(await call("courses", "GET", "/api/courses"), 200);
  const course = expect(await call("course", "GET", `/api/courses/${courses.items[0].id}`), 200);
  state.subject = course.subjects[0];
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
  const answer = expect(await purchase("buy"), 201);
  state.purchase = answer.purchase;
  state.checkout = answer.payment; // Razorpay Checkout's options: key_id, provider_order_id, amount
}

// Razorpay Checkout, played by the sandbox: it hands the SPA's handler the order id, the
// payment id and the signature.
async function checkout() {
  const order = state.checkout.provider_order_id;
  const answer = await call("checkout", "POST", `/api/payments/sandbox/orders/${order}/pay`, {
    token: state.token,
    body: { outcome: "captured", deliver_webhook: false },
  });
  state.handed = expect(answer, 200);
}

async function confirmPayment() {
  const { provider_order_id, provider_payment_id, signature } = state.handed;
  const answer = await call("pay", "POST", `/api/purchases/${state.purchase.id}/payment`, {
    token: state.token,
    body: { provider_order_id, provider_payment_id, signature },
  });
  expect(answer, 200);
}

async function retry() {
  await purchase("retry");
}

async function readCards() {
  const query = new URLSearchParams({ subject_id: state.subject.id, status: "available" });
  expect(await call("cards", "GET", `/api/mock-tests?${query}`, { token: state.token }), 200);
}

async function logout() {
  expect(await call("logout", "POST", "/api/auth/logout", { token: state.token }), 204);
  await call("after_logout", "GET", "/api/auth/me", { token: state.token });
}

const steps = [
  register, verify, login, chooseSubject, sendTextPlain, buy, checkout, confirmPayment, retry, readCards, logout,
];

(async () => {
  try {
    for (const step of steps) {
      window.step = step.name;
      await step();
    }
    window.finished = "ok";
  } catch (error) {
    window.finished = `${window.step}: ${error}`;
  }
})();
