// Runs the flows of spa.ts, as the SPA would, against a server in the sandbox:
// `node run-flows.js <base URL> <email> <password>` prints what happened as JSON
// (tests/test_typed_clients.py compiles it with tsc and checks that).
import {
  autosave,
  availableCard,
  buy,
  connect,
  firstSubject,
  logIn,
  logOut,
  payInTheSandbox,
  reviewTest,
  saveAnswers,
  startTest,
  submitTest,
  type Answer,
  type Schemas,
  type Session,
} from "./spa.js";

declare const process: { argv: string[] };

async function main(baseUrl: string, email: string, password: string): Promise<Record<string, unknown>> {
  const session: Session = { accessToken: null, refreshToken: null };
  const api = connect(baseUrl, session);
  const user = await logIn(api, session, email, password);

  const subject = await firstSubject(api);
  const key = crypto.randomUUID();
  const order = { purchase_type: "single_subject", subject_id: subject.id, cost: subject.price } as const;
  const checkout = await buy(api, order, key);
  const paid = await payInTheSandbox(api, checkout.result);
  const retried = await buy(api, order, key);

  const card = await availableCard(api, subject.id);
  const paper = await startTest(api, card.id);
  const answers: Record<string, Answer> = {};
  const shapes: Record<Schemas["PaperQuestion"]["type"], Answer> = { single: 0, multiple: [0], numerical: "0" };
  for (const question of paper.questions) answers[String(question.id)] = shapes[question.type];
  const [first] = paper.questions;
  if (first) await autosave(api, card.id, { [String(first.id)]: null });
  const saved = first ? await saveAnswers(api, card.id, { [String(first.id)]: answers[String(first.id)] ?? null }) : paper;
  const scored = await submitTest(api, card.id, answers);
  const review = await reviewTest(api, card.id);

  const oldSession = { ...session };
  await logOut(api, session);
  const stale = await connect(baseUrl, oldSession).GET("/api/auth/me");

  return {
    user: user.email,
    checkout: checkout.result.status,
    checkout_replayed: checkout.replayed,
    paid: paid.status,
    cards_created: paid.cards_created,
    retry_replayed: retried.replayed,
    retry_purchase: retried.result.purchase?.id === checkout.result.purchase?.id,
    saved: Object.keys(saved.answers).length,
    scored: scored.status,
    score: scored.score,
    reviewed: review.questions.length,
    questions: paper.questions.length,
    after_logout: stale.response.status,
  };
}

const [baseUrl = "", email = "", password = ""] = process.argv.slice(2);
main(baseUrl, email, password).then(
  (outcome) => console.log(JSON.stringify(outcome)),
  (error: unknown) => {
    console.log(JSON.stringify({ error: String(error) }));
  },
);
