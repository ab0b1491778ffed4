"""YouTube live chat messages (the Data API's ``liveChatMessage`` resources) → ChatEvent /
Retraction. Pure: the connector hands each item of a list or stream response to
``translate``. Money in USD (``ChatEvent.amount``): Super Chats and Super Stickers carry
``amountMicros`` in the viewer's ``currency``, converted with ``money``; memberships say no
price (amount 0)."""

from __future__ import annotations

from typing import Any

from ishowtts.connectors import ChatEvent, Kind, Outcome, Retraction, Status, User, money

PLATFORM = "youtube"
MAX_TEXT = 2000
MAX_NAME = 64
MICROS = 1_000_000
# Known, nothing to read: mode changes, polls, the receiving side of a gifted membership (the
# gift itself was read), removed messages' placeholders.
QUIET = frozenset(
    {"sponsorOnlyModeStartedEvent", "sponsorOnlyModeEndedEvent", "pollEvent", "tombstone",
     "giftMembershipReceivedEvent", "messageRetractedEvent", "fanFundingEvent"}
)  # fmt: skip


class MalformedMessage(ValueError):
    pass


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    return " ".join(value.split())[:limit] if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def usd(details: dict[str, Any]) -> float:
    """``amountMicros`` of ``currency`` in USD; 0 when unreadable or of an unknown currency."""
    try:
        micros = int(str(details.get("amountMicros", "0")))
    except ValueError:
        return 0.0
    if not 0 <= micros < 10**15:
        return 0.0
    converted = money.convert(micros / MICROS, _text(details.get("currency"), 8) or "USD")
    return converted or 0.0


def translate(item: Any, room: str) -> Outcome:
    if not isinstance(item, dict) or not isinstance(item.get("snippet"), dict):
        raise MalformedMessage("an item without a snippet")
    snippet: dict[str, Any] = item["snippet"]
    kind = snippet.get("type")
    if not isinstance(kind, str):
        raise MalformedMessage("an item without a type")
    raw_id = _text(item.get("id"), 128)
    if kind == "messageDeletedEvent":
        gone = _text(_dict(snippet.get("messageDeletedDetails")).get("deletedMessageId"), 128)
        if not gone:
            raise MalformedMessage("messageDeletedEvent without an id")
        return Outcome(Status.RETRACTION, (Retraction(PLATFORM, raw_ids=(gone,)),))
    if kind == "userBannedEvent":
        details = _dict(snippet.get("userBannedDetails"))
        banned = _text(_dict(details.get("bannedUserDetails")).get("channelId"), 128)
        if not banned:
            raise MalformedMessage("userBannedEvent without a channel id")
        reason = "timeout" if details.get("banType") == "temporary" else "banned"
        return Outcome(Status.RETRACTION, (Retraction(PLATFORM, user_id=banned, reason=reason),))
    if kind == "chatEndedEvent":
        return Outcome(Status.NOTICE, note="chat_ended")
    if kind in QUIET:
        return Outcome(Status.IGNORED)
    user = _user(item.get("authorDetails"), snippet)
    base: dict[str, Any] = {"raw_id": raw_id}

    def event(kind: Kind, text: str = "", **fields: Any) -> Outcome:
        chat = ChatEvent(PLATFORM, room, kind, user, text, **base, **fields)
        return Outcome(Status.EVENT, (chat,))

    if kind == "textMessageEvent":
        details = _dict(snippet.get("textMessageDetails"))
        text = _text(details.get("messageText")) or _text(snippet.get("displayMessage"))
        return event(Kind.DANMAKU, text) if text else Outcome(Status.IGNORED)
    if kind == "superChatEvent":
        details = _dict(snippet.get("superChatDetails"))
        comment = _text(details.get("userComment"))
        if comment:
            return event(Kind.SUPER_CHAT, comment, amount=usd(details))
        shown = _text(details.get("amountDisplayString"), 32) or "Super Chat"
        return event(Kind.GIFT, amount=usd(details), gift_name=shown)  # paid, with no words
    if kind == "superStickerEvent":
        details = _dict(snippet.get("superStickerDetails"))
        alt = _text(_dict(details.get("superStickerMetadata")).get("altText"), 64)
        return event(Kind.GIFT, amount=usd(details), gift_name=alt or "Super Sticker", sticker=True)
    if kind == "newSponsorEvent":
        level = _text(_dict(snippet.get("newSponsorDetails")).get("memberLevelName"), 64)
        return event(Kind.GUARD, gift_name=level or "membership")
    if kind == "memberMilestoneChatEvent":
        details = _dict(snippet.get("memberMilestoneChatDetails"))
        level = _text(details.get("memberLevelName"), 64) or "membership"
        return event(Kind.GUARD, _text(details.get("userComment")), gift_name=level)
    if kind == "membershipGiftingEvent":
        details = _dict(snippet.get("membershipGiftingDetails"))
        count = details.get("giftMembershipsCount")
        n = count if isinstance(count, int) and 1 <= count <= 1000 else 1
        level = _text(details.get("giftMembershipsLevelName"), 64) or "membership"
        return event(Kind.GUARD, gift_name=level, gift_count=n)
    return Outcome(Status.UNKNOWN, note=kind[:64])


def _user(author: Any, snippet: dict[str, Any]) -> User:
    details = _dict(author)
    channel = _text(details.get("channelId"), 128) or _text(snippet.get("authorChannelId"), 128)
    if not channel:
        raise MalformedMessage("a message without an author")
    return User(
        id=channel,
        name=_text(details.get("displayName"), MAX_NAME) or channel,
        guard_level=1 if details.get("isChatSponsor") is True else 0,
        is_moderator=details.get("isChatModerator") is True or details.get("isChatOwner") is True,
    )
