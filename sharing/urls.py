from django.urls import path

from console.views import overview

app_name = "sharing"

urlpatterns = [
    path("", overview, name="index"),  # replaced by the sharing screens
]
