from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console.signin import BackofficeSignInForm, SignInView

admin.site.site_header = "Enterprise Account Center: back office"
admin.site.site_title = "EAC back office"
admin.site.login_form = BackofficeSignInForm  # the same sign-in rate limit as the console

urlpatterns = [
    path("login/", SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("backoffice/", admin.site.urls),
    path("sharing/", include("sharing.urls")),
    path("", include("console.urls")),
]
