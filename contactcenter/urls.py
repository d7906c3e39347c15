from django.urls import path

from . import api, views, widget

app_name = "contactcenter"

urlpatterns = [
    path("interactions/", views.interaction_list, name="interaction-list"),
    path("interactions/open/", views.interaction_open_list, name="interaction-open-list"),
    path("interactions/<int:pk>/messages/", views.messages, name="messages"),
    path("live-chats/", views.live_chats, name="live-chats"),
    path("live-chats/<int:pk>/", views.live_chat_detail, name="live-chat"),
    path("live-chats/<int:pk>/messages/", views.live_chat_messages, name="live-chat-messages"),
    path("live-chats/<int:pk>/reply/", views.live_chat_reply, name="live-chat-reply"),
    path("live-chats/<int:pk>/end/", views.live_chat_end, name="live-chat-end"),
    path("tickets/", views.ticket_list, name="ticket-list"),
    path("tickets/new/", views.ticket_create, name="ticket-create"),
    path("tickets/<int:pk>/", views.ticket_detail, name="ticket-detail"),
    path("tickets/<int:pk>/status/", views.ticket_status, name="ticket-status"),
    # Public, signed: channel events (telephony, SMS, WhatsApp, web chat gateways).
    path("api/v1/contactcenter/events", api.events, name="api-events"),
    # Public: the website chat widget.
    path("widget/<str:public_key>.js", widget.script, name="widget-script"),
    path("widget/<str:public_key>/chats", widget.chat_start, name="widget-chat-start"),
    path(
        "widget/<str:public_key>/chats/<int:chat_id>/messages", widget.chat_messages, name="widget-messages"
    ),
    path("widget/<str:public_key>/chats/<int:chat_id>/end", widget.chat_end, name="widget-end"),
]
