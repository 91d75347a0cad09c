"""Forms of the drawers and the page filters. They parse input only; every rule is the services' (R-MON-1).

An amount is parsed by ``core.money.parse_amount`` so a person sees the same message everywhere, and a
``DomainError`` raised by a service is put back on the field it names with ``add_domain_error``.
"""

import uuid

from django import forms

from accounts import services
from accounts import messages
from accounts.models import TransferRecord
from core.errors import DomainError
from core.money import parse_amount


def int_param(value, default=None):
    """A whole number from a query string or form value (an id, a page), or ``default`` when it is none."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def new_idempotency_key() -> str:
    """A fresh key for one money form, made when the form is shown (R-TR-7)."""
    return uuid.uuid4().hex


def add_domain_error(form: forms.Form, exc: DomainError, *, aliases: dict | None = None) -> None:
    """Show a refusal at the field it names, or above the form when the form has no such field."""
    field = (aliases or {}).get(exc.field, exc.field)
    form.add_error(field if field in form.fields else None, exc.message)


class AmountField(forms.CharField):
    """Money typed by a person: digits, optional thousands separators, at most 2 decimals (R-MON-1)."""

    def __init__(self, *, allow_zero: bool = False, **kwargs):
        self.allow_zero = allow_zero
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, "") and not self.required:
            return None
        try:
            return parse_amount(value, field=self.label or "amount", allow_zero=self.allow_zero)
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code)


class IdempotentForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=80)


class CreditLimitForm(IdempotentForm):
    """Credit Quota Settings (R-CR-3 to R-CR-5)."""

    new_limit = AmountField(label="Change credit limit to", allow_zero=True,
                            error_messages={"required": "Enter the new credit limit."})
    reason = forms.CharField(label="Reason", required=False, max_length=200,
                             widget=forms.TextInput(attrs={"placeholder": "Optional, kept on the change record"}))


class TransferForm(IdempotentForm):
    """The Transfer drawer (R-TR-1 to R-TR-5). The drawer's account X is always the transfer-in side.

    ``transfer``: money goes from ``payer`` into X. ``withdraw``: money goes from X back to ``source``.
    """

    TYPE_TRANSFER = "transfer"
    TYPE_WITHDRAW = "withdraw"
    TYPES = [(TYPE_TRANSFER, "Transfer"), (TYPE_WITHDRAW, "Withdraw")]

    type = forms.ChoiceField(label="Transfer type", choices=TYPES, widget=forms.RadioSelect, initial=TYPE_TRANSFER)
    payer = forms.TypedChoiceField(label="Transfer-out account", coerce=int, required=False, empty_value=None)
    source = forms.TypedChoiceField(label="Withdraw to account", coerce=int, required=False, empty_value=None)
    amount = AmountField(label="Amount", error_messages={"required": "Enter an amount."})
    remark = forms.CharField(label="Remark", required=False, strip=True,
                             widget=forms.Textarea(attrs={"rows": 2, "maxlength": 200}))

    def __init__(self, *args, payer_choices=(), source_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.set_choices(payer_choices, source_choices)

    def set_choices(self, payer_choices, source_choices) -> None:
        """The accounts the two lists offer (what is valid, and what the form shows); errors found stay."""
        self.fields["payer"].choices = [("", "Choose the transfer-out account")] + list(payer_choices)
        self.fields["source"].choices = [("", "Choose an account that transferred to this one")] + list(source_choices)

    def clean_remark(self):
        remark = self.cleaned_data.get("remark") or ""
        if not remark:
            raise forms.ValidationError(messages.MSG_REMARK_REQUIRED)
        if len(remark) > 200:
            raise forms.ValidationError(messages.MSG_REMARK_TOO_LONG.format(length=len(remark)))
        return remark

    def clean(self):
        data = super().clean()
        kind = data.get("type")
        if kind == self.TYPE_TRANSFER and not data.get("payer") and "payer" not in self.errors:
            self.add_error("payer", "Choose the transfer-out account.")
        if kind == self.TYPE_WITHDRAW and not data.get("source") and "source" not in self.errors:
            self.add_error("source", "Choose the account to withdraw to.")
        return data


class AlertForm(forms.Form):
    """Low balance alert of one account (R-AL-1)."""

    enabled = forms.BooleanField(label="Enable low balance alert", required=False)
    threshold = AmountField(label="Alert threshold", allow_zero=True,
                            error_messages={"required": "Enter the alert threshold (0.00 or more)."})


class AlertBatchForm(AlertForm):
    """Low balance alert of the selected accounts, all or none (R-AL-2)."""

    accounts = forms.TypedMultipleChoiceField(coerce=int, error_messages={"required": messages.MSG_NO_ACCOUNTS})

    def __init__(self, *args, account_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["accounts"].choices = list(account_choices)


# --- Filters of the lists (all state in the URL) ---

class DateRangeForm(forms.Form):
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data


class TransferFilterForm(DateRangeForm):
    """Transfer records: type and date (R-TR-6); on the enterprise page also the account."""

    kind = forms.ChoiceField(label="Type", required=False,
                             choices=[("", "All types")] + list(TransferRecord.Kind.choices))

    field_order = ["kind", "date_from", "date_to"]


class AccountFilterMixin(forms.Form):
    """An account filter: a search by account ID or name, or one account chosen (its primary key).

    The select lists the accounts only for a small enterprise; a large one searches instead.
    """

    SELECT_LIMIT = 200

    q = forms.CharField(label="Account ID or name", required=False, max_length=100,
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Account ID or name"}))
    account = forms.IntegerField(label="Account", required=False, min_value=1, widget=forms.Select)

    def set_account_choices(self, choices) -> None:
        """``choices`` of (pk, label), or ``None`` when there are too many to list."""
        if choices is None:
            self.fields["account"].widget = forms.HiddenInput()
        else:
            self.fields["account"].widget.choices = [("", "All accounts")] + list(choices)


class EnterpriseTransferFilterForm(AccountFilterMixin, TransferFilterForm):
    """The enterprise-wide transfer records page: type, date and account."""

    field_order = ["kind", "q", "account", "date_from", "date_to"]


class CreditRecordFilterForm(AccountFilterMixin, DateRangeForm):
    """Credit change records: account (search or choice) and date (R-CR-7)."""

    field_order = ["q", "account", "date_from", "date_to"]


class AuditFilterForm(DateRangeForm):
    """Audit log: action and date (R-AU-1)."""

    action = forms.ChoiceField(label="Action", required=False)

    field_order = ["action", "date_from", "date_to"]

    def __init__(self, *args, actions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "All actions")] + [(a, a.replace("_", " ").capitalize())
                                                                 for a in actions]
