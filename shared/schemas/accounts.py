"""Request and response shapes of users, tokens, customers and subscriptions."""

from __future__ import annotations

import marshmallow as ma

from shared.models import Plan, Role, SubscriptionStatus
from shared.schemas.base import ResponseSchema, Schema
from shared.schemas.fields import Boolean, Email, Name, Password, PhoneNumber, UtcDateTime
from shared.schemas.pagination import PageQuerySchema, page_schema


class RegisterSchema(Schema):
    email = Email(required=True)
    password = Password(required=True)
    full_name = Name(required=True)
    phone_number = PhoneNumber(required=True)


class LoginSchema(Schema):
    email = Email(required=True)
    password = Password(required=True, check_strength=False)


class UserSchema(ResponseSchema):
    id = ma.fields.Integer(dump_only=True)
    email = ma.fields.String(dump_only=True)
    full_name = ma.fields.String(dump_only=True)
    phone_number = ma.fields.String(dump_only=True, allow_none=True)
    role = ma.fields.Enum(Role, by_value=True, dump_only=True)
    is_active = ma.fields.Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class SubscriptionSchema(ResponseSchema):
    id = ma.fields.Integer(dump_only=True)
    plan = ma.fields.Enum(Plan, by_value=True, dump_only=True)
    status = ma.fields.Enum(SubscriptionStatus, by_value=True, dump_only=True)
    started_at = UtcDateTime(dump_only=True)
    expires_at = UtcDateTime(dump_only=True, allow_none=True)


class CustomerSchema(ResponseSchema):
    id = ma.fields.Integer(dump_only=True)
    user_id = ma.fields.Integer(dump_only=True)
    email = ma.fields.String(dump_only=True)
    phone_number = ma.fields.String(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class CustomerDetailSchema(CustomerSchema):
    full_name = ma.fields.String(dump_only=True, attribute="user.full_name")
    subscriptions = ma.fields.List(ma.fields.Nested(SubscriptionSchema), dump_only=True)


class AccessTokenSchema(ResponseSchema):
    access_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})


class SessionSchema(AccessTokenSchema):
    """The answer to register and login."""

    user = ma.fields.Nested(UserSchema, required=True)
    refresh_token = ma.fields.String(required=True)


class OwnedSubjectSchema(ResponseSchema):
    subject_id = ma.fields.Integer()
    name = ma.fields.String()
    purchase_id = ma.fields.Integer()
    access_until = UtcDateTime(allow_none=True, metadata={"description": "Owned until then (null: no end)"})


class MeSchema(ResponseSchema):
    user = ma.fields.Nested(UserSchema, required=True)
    customer = ma.fields.Nested(CustomerSchema, allow_none=True)
    subscription = ma.fields.Nested(SubscriptionSchema, allow_none=True)
    owned = ma.fields.List(
        ma.fields.Nested(OwnedSubjectSchema), metadata={"description": "The subjects the customer owns, until when"}
    )


class UpgradeSchema(Schema):
    phone_number = PhoneNumber(
        metadata={"description": "Required when the admin account has no phone number; E.164 on output."}
    )
    plan = ma.fields.Enum(Plan, by_value=True, load_default=Plan.BASIC)


class UpgradeResultSchema(ResponseSchema):
    customer = ma.fields.Nested(CustomerSchema, required=True)
    subscription = ma.fields.Nested(SubscriptionSchema, required=True)


class CustomerUpdateSchema(Schema):
    phone_number = PhoneNumber()
    full_name = Name()


class CustomerListQuerySchema(PageQuerySchema):
    q = ma.fields.String(
        validate=ma.validate.Length(min=1, max=100),
        metadata={"description": "Search in email and phone number"},
    )


CustomerPageSchema = page_schema(CustomerSchema, "CustomerPage")


# ======================================================================================
# Admin user management (GET/PATCH /api/users)
# ======================================================================================


class UserListQuerySchema(PageQuerySchema):
    q = ma.fields.String(
        validate=ma.validate.Length(min=1, max=100),
        metadata={
            "description": "Case-insensitive search in email, full name and phone number (any spelling "
            "of its digits); % and _ are literal"
        },
    )
    role = ma.fields.Enum(Role, by_value=True)
    is_active = ma.fields.Boolean()


class UserSummarySchema(UserSchema):
    customer_id = ma.fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "The customer profile's id (null: not a customer)"}
    )
    is_customer = ma.fields.Boolean(dump_only=True)
    last_login_at = UtcDateTime(
        dump_only=True, allow_none=True, metadata={"description": "When the latest session started (null: never)"}
    )


UserPageSchema = page_schema(UserSummarySchema, "UserPage")


class UserUpdateSchema(Schema):
    is_active = Boolean(
        metadata={"description": "false deactivates the account and ends every session of it; true reactivates it"},
    )
