from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

admin.site.site_header = "Enterprise Account Center: back office"
admin.site.site_title = "EAC back office"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("backoffice/", admin.site.urls),
    path("sharing/", include("sharing.urls")),
    path("", include("console.urls")),
]
