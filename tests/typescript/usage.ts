// What the SPA writes against the types generated from /api/openapi.json (./api.d.ts is
// generated next to a copy of this file by tests/test_typed_clients.py). `tsc --strict`
// must accept it: an operation without its operationId, a response field that became
// optional, an untyped enum or an untyped nullable reference makes it fail.
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./api";

type Schemas = components["schemas"];
type LoginBody = operations["login"]["requestBody"]["content"]["application/json"];
type PurchaseBody = operations["createPurchase"]["requestBody"]["content"]["application/json"];
type CardStatus = "available" | "in_progress" | "completed" | "expired";

export interface Outcome {
  card: Schemas["Card"];
  status: CardStatus;
  replayed: boolean;
  customer: Schemas["Customer"] | null;
}

export async function loginBuyAndReadACard(baseUrl: string, email: string, password: string): Promise<Outcome> {
  const api = createClient<paths>({ baseUrl });

  const credentials: LoginBody = { email, password };
  const login = await api.POST("/api/auth/login", { body: credentials });
  if (login.error) throw new Error(`${login.error.status}: ${login.error.detail}`);
  const accessToken: string = login.data.access_token;
  const headers = { Authorization: `Bearer ${accessToken}` };

  const courses = await api.GET("/api/courses", { params: { query: { per_page: 10 } } });
  if (courses.error) throw new Error(courses.error.detail);
  const courseId: number | undefined = courses.data.items[0]?.id;
  if (courseId === undefined) throw new Error("empty catalog");
  const course = await api.GET("/api/courses/{course_id}", { params: { path: { course_id: courseId } } });
  if (course.error) throw new Error(course.error.detail);
  const subject: Schemas["Subject"] | undefined = course.data.subjects[0];
  if (subject === undefined) throw new Error("a course without subjects");
  const price: string = subject.price; // money is a decimal string, never a float

  const order: PurchaseBody = { purchase_type: "single_subject", subject_id: subject.id, cost: price };
  const bought = await api.POST("/api/purchases", {
    body: order,
    params: { header: { "Idempotency-Key": `buy-${subject.id}` } },
    headers,
  });
  if (bought.error) throw new Error(bought.error.detail);
  const replayed = bought.response.headers.get("Idempotent-Replayed") === "true";
  let outcome: "created" | "already_owned" | "pending_payment" | "paid" = bought.data.status;
  let cardsCreated: number = bought.data.cards_created;
  const checkout = bought.data.payment;
  const purchase = bought.data.purchase;
  if (outcome === "pending_payment" && checkout && purchase) {
    // Razorpay Checkout, played by the sandbox: it hands back what the SPA confirms.
    const amountInPaise: number = checkout.amount;
    const handed = await api.POST("/api/payments/sandbox/orders/{provider_order_id}/pay", {
      params: { path: { provider_order_id: checkout.provider_order_id } },
      body: { outcome: "captured", deliver_webhook: false },
      headers,
    });
    if (handed.error) throw new Error(handed.error.detail);
    if (handed.data.signature === null) throw new Error("the payment was declined"); // nothing to confirm
    const paid = await api.POST("/api/purchases/{purchase_id}/payment", {
      params: { path: { purchase_id: purchase.id } },
      body: {
        provider_order_id: handed.data.provider_order_id,
        provider_payment_id: handed.data.provider_payment_id,
        signature: handed.data.signature,
      },
      headers,
    });
    if (paid.error) throw new Error(`${amountInPaise} paise: ${paid.error.detail}`);
    outcome = paid.data.status;
    cardsCreated = paid.data.cards_created;
  }

  const cards = await api.GET("/api/mock-tests", {
    params: { query: { subject_id: subject.id, status: "available" } },
    headers,
  });
  if (cards.error) throw new Error(cards.error.detail);
  const card = cards.data.items[0];
  if (card === undefined) throw new Error(`no card after ${outcome} (${cardsCreated} created)`);
  const status: CardStatus = card.status;
  const testNumber: number = card.test_number;
  const score: string | null = card.score;

  const me = await api.GET("/api/auth/me", { headers });
  if (me.error) throw new Error(me.error.detail);
  const customer: Schemas["Customer"] | null = me.data.customer;
  const plan: "basic" | "premium" | undefined = me.data.subscription?.plan;
  console.log(testNumber, score, plan);
  return { card, status, replayed, customer };
}
