"""Sign-in for the console and the back office, with the sign-in rate limit of ``core.login_throttle``.

Both doors (``/login/`` and ``/backoffice/login/``) use the same check: while a user name or an address is
locked, the password is not even tried, and the form says why and for how long (the console answers 429).
"""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from core import login_throttle


class ThrottledSignInMixin:
    """Refuse while locked; count a wrong user name or password; a successful sign-in clears the count."""

    lock = None

    def clean(self):
        username = self.cleaned_data.get("username")
        ip = login_throttle.client_ip(self.request)
        self.lock = login_throttle.lock(username=username, ip=ip)
        if self.lock is not None:
            raise ValidationError(self.lock.message, code="locked")
        try:
            return super().clean()
        except ValidationError:
            if self.user_cache is None and username and self.cleaned_data.get("password"):
                login_throttle.record_failure(username=username, ip=ip)
            raise
        finally:
            if self.user_cache is not None:
                login_throttle.record_success(username=username)


class SignInForm(ThrottledSignInMixin, AuthenticationForm):
    pass


class BackofficeSignInForm(ThrottledSignInMixin, AdminAuthenticationForm):
    pass


class SignInView(auth_views.LoginView):
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.lock is not None:
            response.status_code = 429  # Too Many Requests, with the form and the reason
        return response
