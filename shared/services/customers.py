"""Customer profiles, and the upgrade of an admin account to a customer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import inspect, or_, select
from sqlalchemy.orm import joinedload, selectinload

from shared.errors import Conflict, ConstraintConflict, FieldErrors, Forbidden, NotFound, ValidationFailed
from shared.extensions import db
from shared.models import Customer, Plan, Subscription, SubscriptionStatus, User
from shared.models.base import utcnow
from shared.models.customer import ALREADY_CUSTOMER, EMAIL_TAKEN, PHONE_TAKEN
from shared.services.base import Page, escape_like, paginate, retry_on_lock_conflict, settle_race, transactional

PHONE_REQUIRED = "A phone number is required to become a customer; this account has none."
PHONE_MISMATCH = "This account already has another phone number; the customer takes the account's number."
NOT_A_CUSTOMER = "This action needs a customer account."
SUBSCRIPTION_DAYS = {Plan.BASIC: 365, Plan.PREMIUM: 365}


class CustomerService:
    @staticmethod
    def conflicts(
        *, email: str | None = None, phone_number: str | None = None, exclude_id: int | None = None
    ) -> FieldErrors:
        """Which of these values another customer already holds (one statement).

        A friendly pre-check only: the unique constraints decide under concurrency.
        """
        conditions = []
        if email is not None:
            conditions.append(Customer.email == email)
        if phone_number is not None:
            conditions.append(Customer.phone_number == phone_number)
        if not conditions:
            return {}
        statement = select(Customer.email, Customer.phone_number).where(or_(*conditions))
        if exclude_id is not None:
            statement = statement.where(Customer.id != exclude_id)
        errors: FieldErrors = {}
        for taken_email, taken_phone in db.session.execute(statement):
            if email is not None and taken_email == email:
                errors["email"] = [EMAIL_TAKEN]
            if phone_number is not None and taken_phone == phone_number:
                errors["phone_number"] = [PHONE_TAKEN]
        return errors

    @staticmethod
    def upgrade_to_customer(admin: User, data: dict[str, Any]) -> tuple[Customer, Subscription]:
        """The admin's email and phone become a customer with a subscription, atomically."""
        return settle_race(lambda: CustomerService._upgrade(admin, data), CustomerService._lost_upgrade(admin))

    @staticmethod
    def _lost_upgrade(admin: User) -> Callable[[ConstraintConflict], tuple[Customer, Subscription]]:
        def decide(conflict: ConstraintConflict) -> tuple[Customer, Subscription]:
            # If the concurrent winner was this same admin's request, say so rather than
            # naming whichever unique index the database happened to check first.
            if CustomerService._is_customer(admin):
                raise CustomerService._already_customer() from conflict
            raise conflict

        return decide

    @staticmethod
    def _is_customer(user: User) -> bool:
        """Asks the database: the profile loaded with the token may predate a concurrent upgrade."""
        return db.session.execute(select(Customer.id).where(Customer.user_id == user.id)).first() is not None

    @staticmethod
    def _already_customer() -> Conflict:
        return Conflict(ALREADY_CUSTOMER, title="Already a customer", slug="already-customer")

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _upgrade(admin: User, data: dict[str, Any]) -> tuple[Customer, Subscription]:
        if not admin.is_admin:
            raise Forbidden("Only an admin account can be upgraded to a customer.")
        if CustomerService._is_customer(admin):
            raise CustomerService._already_customer()
        given = data.get("phone_number")
        if admin.phone_number and given and given != admin.phone_number:
            raise ValidationFailed(PHONE_MISMATCH, errors={"phone_number": [PHONE_MISMATCH]})
        phone_number = admin.phone_number or given
        if phone_number is None:
            raise ValidationFailed(PHONE_REQUIRED, errors={"phone_number": [PHONE_REQUIRED]})
        conflicts = CustomerService.conflicts(email=admin.email, phone_number=phone_number)
        if conflicts:
            raise Conflict(next(iter(conflicts.values()))[0], errors=conflicts)

        if admin.phone_number is None:
            admin.phone_number = phone_number
        customer = Customer(user=admin, email=admin.email, phone_number=phone_number)  # sets admin.customer too
        db.session.add(customer)
        db.session.flush()
        plan = data.get("plan", Plan.BASIC)
        started_at = utcnow()
        subscription = Subscription(
            customer_id=customer.id,
            plan=plan,
            status=SubscriptionStatus.ACTIVE,
            started_at=started_at,
            expires_at=started_at + timedelta(days=SUBSCRIPTION_DAYS[plan]),
        )
        db.session.add(subscription)
        db.session.flush()
        return customer, subscription

    @staticmethod
    def list_customers(page: int, per_page: int, search: str | None = None) -> Page[Customer]:
        statement = select(Customer).order_by(Customer.id)
        if search:
            pattern = f"%{escape_like(search)}%"
            statement = statement.where(
                or_(
                    Customer.email.like(pattern, escape="\\"),
                    Customer.phone_number.like(pattern, escape="\\"),
                )
            )
        return paginate(statement, page, per_page)

    @staticmethod
    def get_customer(customer_id: int) -> Customer:
        customer = db.session.execute(
            select(Customer)
            .where(Customer.id == customer_id)
            .options(joinedload(Customer.user), selectinload(Customer.subscriptions))
        ).scalar_one_or_none()
        if customer is None:
            raise NotFound("There is no customer with this id.")
        return customer

    @staticmethod
    def profile_of(user: User) -> Customer | None:
        """The user's customer profile: the one loaded with the user when the request was
        authenticated, or one query."""
        if "customer" not in inspect(user).unloaded:
            return user.customer
        return db.session.execute(select(Customer).where(Customer.user_id == user.id)).scalar_one_or_none()

    @staticmethod
    def customer_id_of(user: User) -> int:
        """The id of the caller's customer profile; 403 for accounts that have none."""
        customer = CustomerService.profile_of(user)
        if customer is None:
            raise Forbidden(NOT_A_CUSTOMER)
        return customer.id

    @staticmethod
    def customer_of(user: User) -> Customer:
        """The caller's own customer profile; 403 for accounts that have none."""
        return CustomerService.get_customer(CustomerService.customer_id_of(user))

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def update_own_profile(user: User, data: dict[str, Any]) -> Customer:
        customer = CustomerService.customer_of(user)
        phone_number = data.get("phone_number")
        if phone_number is not None and phone_number != customer.phone_number:
            conflicts = CustomerService.conflicts(phone_number=phone_number, exclude_id=customer.id)
            if conflicts:
                raise Conflict(PHONE_TAKEN, errors=conflicts)
            customer.phone_number = phone_number
            user.phone_number = phone_number
        if "full_name" in data:
            user.full_name = data["full_name"]
        db.session.flush()
        return customer
